"""Critics and generators for the tests: the reference code's MLP pair (from :mod:`fastgan.reference`), a small
conv critic without BatchNorm, and a tiny MLP GAN for whole training steps."""

import torch
from torch import nn

from fastgan.reference import Critic as ReferenceCritic  # noqa: F401 - the tests' name for it
from fastgan.reference import Generator as ReferenceGenerator  # noqa: F401 - the tests' name for it


class ConvCritic(nn.Module):
    def __init__(self, channels=3, width=8):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.LazyLinear(1),
        )

    def forward(self, x):
        return self.model(x)


def tiny_mlp_gan(device) -> tuple[nn.Module, nn.Module]:
    """A seeded MLP critic (12-32-1, LeakyReLU) and generator (4-32-12) on ``device``."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(12, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1)).to(device)
    generator = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 12)).to(device)
    return critic, generator

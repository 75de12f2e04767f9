"""Generators and critics: the seed's MLP pair, wider MLPs for the 2-D sets, and a DCGAN-style conv pair."""

from __future__ import annotations

import math

import torch
from torch import nn


def _mlp(sizes: list[int], activation: type[nn.Module]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return layers


class MLPGenerator(nn.Module):
    """z (B, latent_dim) -> x (B, out_dim). The seed's: hidden 128, depth 1, Tanh output."""

    def __init__(self, latent_dim: int = 100, out_dim: int = 784, hidden: int = 128, depth: int = 1,
                 tanh: bool = True, out_shape: tuple[int, ...] | None = None):
        super().__init__()
        layers = _mlp([latent_dim] + [hidden] * depth + [out_dim], nn.ReLU)
        self.model = nn.Sequential(*layers, *([nn.Tanh()] if tanh else []))
        self.out_shape = out_shape or (out_dim,)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z).view(z.shape[0], *self.out_shape)


class MLPCritic(nn.Module):
    """x (B, ...) -> score (B, 1). The seed's: hidden 128, depth 1, no output activation."""

    def __init__(self, in_dim: int = 784, hidden: int = 128, depth: int = 1):
        super().__init__()
        self.model = nn.Sequential(*_mlp([in_dim] + [hidden] * depth + [1], nn.ReLU))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.flatten(1))


def _base_and_steps(image_size: int) -> tuple[int, int]:
    base = 7 if image_size % 7 == 0 else 4
    steps = round(math.log2(image_size / base))
    if base * 2**steps != image_size:
        raise ValueError(f"image size {image_size} is not 4 or 7 times a power of two (28, 32, 64, ...)")
    return base, steps


class DCGANGenerator(nn.Module):
    """z (B, latent_dim) -> image (B, channels, S, S) in [-1, 1]: a linear stem, then stride-2 transposed convs."""

    def __init__(self, latent_dim: int = 100, channels: int = 1, image_size: int = 28, width: int = 64):
        super().__init__()
        base, steps = _base_and_steps(image_size)
        top = width * 2 ** (steps - 1)
        self.stem = nn.Sequential(nn.Linear(latent_dim, top * base * base), nn.Unflatten(1, (top, base, base)))
        layers: list[nn.Module] = []
        c = top
        for i in range(steps):
            last = i == steps - 1
            layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.ConvTranspose2d(c, channels if last else c // 2, 4, 2, 1)]
            c //= 2
        self.body = nn.Sequential(*layers, nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(z))


class DCGANCritic(nn.Module):
    """image (B, channels, S, S) -> score (B, 1): stride-2 convs with LeakyReLU.

    ``norm``: "batch" (DCGAN), "layer" (per-sample, safe with gradient penalties) or "none".
    """

    def __init__(self, channels: int = 1, image_size: int = 28, width: int = 64, norm: str = "layer"):
        super().__init__()
        base, steps = _base_and_steps(image_size)
        layers: list[nn.Module] = []
        c_in, c_out = channels, width
        for i in range(steps):
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1))
            if i > 0 and norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            elif i > 0 and norm == "layer":
                layers.append(nn.GroupNorm(1, c_out))  # LayerNorm over (C, H, W), as in the WGAN-GP paper
            layers.append(nn.LeakyReLU(0.2))
            c_in, c_out = c_out, c_out * 2
        self.model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * base * base, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PackedCritic(nn.Module):
    """PacGAN's packing: the critic scores groups of ``pack`` consecutive samples, concatenated along the first
    sample dimension (features of 2-D points, channels of images): (B, C, ...) -> (B / pack, 1).

    Seeing several samples at once lets the critic notice when they come from too few modes (Lin et al., 2018).
    ``inner`` takes (B / pack, pack * C, ...) inputs. A per-sample gradient penalty through a packed critic is
    taken per sample, each with the gradient of its group's score.
    """

    def __init__(self, inner: nn.Module, pack: int):
        super().__init__()
        if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
            raise ValueError(f"pack must be a positive int, got {pack!r}")
        self.inner, self.pack = inner, pack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % self.pack:
            raise ValueError(f"a packed critic needs a batch divisible by pack={self.pack}, got {x.shape[0]} samples")
        return self.inner(x.reshape(x.shape[0] // self.pack, self.pack * x.shape[1], *x.shape[2:]))

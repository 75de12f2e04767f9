"""What a run builds from its settings: the provided generator and critic, the generator's noise, the optimizers
(in the form the steps' mode needs), and the check that the models fit the device."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..steps.modes import GRAPH_MODES
from .data import TOY_SETS
from .models import (
    ConditionalGenerator,
    DCGANCritic,
    DCGANGenerator,
    InfoGANCritic,
    InfoGANGenerator,
    MLPCritic,
    MLPGenerator,
    PackedCritic,
    ProjectionCritic,
    ResNetCritic,
    ResNetGenerator,
    spectral_normalized,
)
from .settings import Settings

EMBED_DIM = 16  # the conditional generator's class embedding


def build_models(s: Settings, sample_shape: tuple[int, ...], classes: int | None) -> tuple[nn.Module, nn.Module]:
    """The provided generator and critic for the settings ``s`` and data of ``sample_shape`` with ``classes``
    (None: unconditional): packed, spectrally normalised, conditional."""
    numel = 1
    for n in sample_shape:
        numel *= n
    pack, conditional = s.pack, s.conditional
    latent = s.latent_dim + (EMBED_DIM if conditional else 0)
    if s.model in ("dcgan", "resnet", "infogan"):
        channels, size = sample_shape[0], sample_shape[-1]
    # A per-sample penalty needs a critic whose samples do not interact: LayerNorm, not BatchNorm; spectral
    # normalization takes the place of both (SNGAN's critics have no normalization layers).
    norm = "none" if s.spectral_norm else "layer" if s.losses.penalty else "batch"
    generator: nn.Module
    critic: nn.Module
    if s.model == "dcgan":
        generator = DCGANGenerator(latent, channels, size)
        critic = DCGANCritic(pack * channels, size, norm=norm)
    elif s.model == "infogan":
        generator = InfoGANGenerator(latent, channels, size)
        critic = InfoGANCritic(pack * channels, size, norm=norm)
    elif s.model == "resnet":
        generator = ResNetGenerator(latent, channels, size, s.hidden)
        critic = ResNetCritic(pack * channels, size, s.hidden)
    else:
        toy = s.data in TOY_SETS
        generator = MLPGenerator(latent, numel, s.hidden, s.depth, tanh=not toy, out_shape=sample_shape)
        critic = MLPCritic(pack * numel, s.hidden, s.depth)
    if conditional:
        assert classes is not None
        generator, critic = ConditionalGenerator(generator, classes, EMBED_DIM), ProjectionCritic(critic, classes)
    if s.spectral_norm:
        critic = spectral_normalized(critic)
    return generator, PackedCritic(critic, pack) if pack > 1 else critic


def latent_noise(
    s: Settings, n: int, generator: torch.Generator | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """(n, latent_dim) float32 generator inputs for the settings ``s``: N(0, I), or uniform on [-1, 1]
    (``noise="uniform"``), drawn from ``generator`` (or the default generator of ``device``)."""
    shape = (n, s.latent_dim)
    if s.noise == "uniform":
        return torch.rand(shape, generator=generator, device=device).mul_(2).sub_(1)
    return torch.randn(shape, generator=generator, device=device)


def device_memory(device: torch.device) -> int:
    """Bytes of memory on ``device``: the GPU's, or the machine's physical memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(s: Settings, sample_shape: tuple[int, ...], classes: int | None, device: torch.device) -> None:
    """``ValueError`` naming the size options when the provided models, with their gradients and Adam's two
    moments in fp32, would take more than ``device``'s memory (counted on models built on the meta device)."""
    with torch.device("meta"):
        generator, critic = build_models(s, sample_shape, classes)
    count = sum(p.numel() for m in (generator, critic) for p in m.parameters())
    need, have = 16 * count, device_memory(device)
    if need > have:
        raise ValueError(
            f"--model {s.model} with --hidden {s.hidden}, --depth {s.depth}, --latent-dim "
            f"{s.latent_dim}: {count:,} parameters, {_size(need)} with gradients and optimizer "
            f"state, more than the {_size(have)} of {device.type}"
        )


def _size(n: int) -> str:
    return f"{n / 2**30:.0f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def make_optimizer(s: Settings, params, device: torch.device, mode: str) -> torch.optim.Optimizer:
    """Adam or RMSprop as the settings say, made for the steps' resolved ``mode``."""
    lr: float | torch.Tensor
    if mode in GRAPH_MODES:
        # A captured step reads the learning rate from a device tensor (a graph would keep the first float).
        lr, options = torch.tensor(s.lr, device=device), {"capturable": True}
    elif mode == "compile":
        # The compiled steps run Adam's and RMSprop's update inside their graph
        # (fastgan.steps.compiled.optimizer_update), which reads a tensor rate at each call: each decayed float
        # would recompile it.
        lr, options = torch.tensor(s.lr), {}
    elif s.optimizer == "adam":
        # Adam's fused kernel (CPU and CUDA): one kernel for every tensor instead of a loop over them.
        lr, options = s.lr, {"fused": True}
    else:
        lr, options = s.lr, {}
    if s.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, **options)
    return torch.optim.Adam(params, lr=lr, betas=s.betas, **options)


def load_optimizer(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """``optimizer.load_state_dict(saved)`` keeping this run's form of the update: a resumed run may change
    ``--mode``, and the saved groups would bring back the old one (a fused update, or a float rate, where a
    captured or compiled step needs a tensor rate; capturable or not, which also places the step counters)."""
    groups = []
    for mine, theirs in zip(optimizer.param_groups, saved["param_groups"]):
        rate = float(theirs["lr"])  # the decayed rate at the checkpoint
        lr = torch.full_like(mine["lr"], rate) if torch.is_tensor(mine["lr"]) else rate
        groups.append({**theirs, **{k: mine[k] for k in ("capturable", "fused") if k in mine}, "lr": lr})
    optimizer.load_state_dict({**saved, "param_groups": groups})

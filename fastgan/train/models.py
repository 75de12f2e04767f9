"""Generators and critics: the reference's MLP pair, wider MLPs for the 2-D sets, a DCGAN-style conv pair, the
InfoGAN-style pair of Lucic et al.'s protocol and an SNGAN/BigGAN-style residual pair; spectral normalization
of a critic, a projection discriminator and a class-conditional generator for any of them.

Every critic here is ``head(features(x))``: ``features`` maps (B, ...) samples to (B, F) features and ``head``
is a linear layer F -> 1, which :class:`ProjectionCritic` reuses.
"""

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
    """z (B, latent_dim) -> x (B, out_dim). The reference's: hidden 128, depth 1, Tanh output."""

    def __init__(
        self,
        latent_dim: int = 100,
        out_dim: int = 784,
        hidden: int = 128,
        depth: int = 1,
        tanh: bool = True,
        out_shape: tuple[int, ...] | None = None,
    ):
        super().__init__()
        layers = _mlp([latent_dim] + [hidden] * depth + [out_dim], nn.ReLU)
        self.model = nn.Sequential(*layers, *([nn.Tanh()] if tanh else []))
        self.out_shape = out_shape or (out_dim,)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z).view(z.shape[0], *self.out_shape)


def _all_but_last(sequential: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    for layer in list(sequential)[:-1]:
        x = layer(x)
    return x


class MLPCritic(nn.Module):
    """x (B, ...) -> score (B, 1). The reference's: hidden 128, depth 1, no output activation."""

    def __init__(self, in_dim: int = 784, hidden: int = 128, depth: int = 1):
        super().__init__()
        self.model = nn.Sequential(*_mlp([in_dim] + [hidden] * depth + [1], nn.ReLU))

    @property
    def head(self) -> nn.Linear:
        return self.model[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return _all_but_last(self.model, x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.flatten(1))


# The image sides each --model takes (at most 1024: decoding and the data set held on the device stay bounded).
IMAGE_SIZES = {
    "mlp": "4 to 1024",
    "dcgan": "4 or 7 times a power of two, 8 to 1024 (8, 14, 16, 28, 32, 56, 64, ...)",
    "resnet": "4 or 7 times a power of two, 8 to 1024 (8, 14, 16, 28, 32, 56, 64, ...)",
    "infogan": "a multiple of 4, 4 to 1024",
}


def image_size_problem(model: str, size: object) -> str | None:
    """Why ``--model model`` cannot take ``--image-size size`` (None when it can)."""
    if (
        isinstance(size, bool)
        or not isinstance(size, int)
        or not 4 <= size <= 1024
        or model == "infogan"
        and (size % 4)
        or model in ("dcgan", "resnet")
        and not any(size == b << k for b in (4, 7) for k in range(1, 9))
    ):
        return f"--image-size {size} does not fit --model {model}: it takes {IMAGE_SIZES[model]}"
    return None


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


class _SequentialCritic(nn.Module):
    """A critic that is one ``self.model`` Sequential ending in its linear head."""

    model: nn.Sequential

    @property
    def head(self) -> nn.Linear:
        return self.model[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return _all_but_last(self.model, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class DCGANCritic(_SequentialCritic):
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


def _normal_init(module: nn.Module, std: float = 0.02) -> None:
    """Conv and linear weights from N(0, std), their biases 0 (compare_gan's initialisation)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class InfoGANGenerator(nn.Module):
    """z (B, latent_dim) -> image (B, channels, S, S) in [-1, 1], S a multiple of 4 (28 on the protocol):
    Lucic et al.'s InfoGAN-style generator, FC 1024-BN-ReLU, FC 128 x S/4 x S/4-BN-ReLU, deconv 4x4/2 64-BN-ReLU,
    deconv 4x4/2 to ``channels``, then Tanh (the data are scaled to [-1, 1]; compare_gan's sigmoid matches
    its [0, 1] data). Weights N(0, 0.02)."""

    def __init__(self, latent_dim: int = 64, channels: int = 1, image_size: int = 28):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"--model infogan needs an image size divisible by 4, got {image_size}")
        base = image_size // 4
        self.model = nn.Sequential(
            nn.Linear(latent_dim, 1024),
            nn.BatchNorm1d(1024),
            nn.ReLU(),
            nn.Linear(1024, 128 * base * base),
            nn.BatchNorm1d(128 * base * base),
            nn.ReLU(),
            nn.Unflatten(1, (128, base, base)),
            nn.ConvTranspose2d(128, 64, 4, 2, 1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.ConvTranspose2d(64, channels, 4, 2, 1),
            nn.Tanh(),
        )
        _normal_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)


class InfoGANCritic(_SequentialCritic):
    """image (B, channels, S, S) -> score (B, 1), S a multiple of 4: Lucic et al.'s InfoGAN-style
    discriminator, conv 4x4/2 64-lReLU, conv 4x4/2 128-[norm]-lReLU, FC 1024-[norm]-lReLU, FC 1 (lReLU slope
    0.2, weights N(0, 0.02)). ``norm``: "batch" (the paper's), "layer" (per-sample, safe with gradient penalties)
    or "none"."""

    def __init__(self, channels: int = 1, image_size: int = 28, norm: str = "batch"):
        super().__init__()
        base = image_size // 4
        conv_norm = {"batch": lambda: nn.BatchNorm2d(128), "layer": lambda: nn.GroupNorm(1, 128)}.get(norm)
        fc_norm = {"batch": lambda: nn.BatchNorm1d(1024), "layer": lambda: nn.LayerNorm(1024)}.get(norm)
        self.model = nn.Sequential(
            nn.Conv2d(channels, 64, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, 2, 1),
            *([conv_norm()] if conv_norm else []),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(128 * base * base, 1024),
            *([fc_norm()] if fc_norm else []),
            nn.LeakyReLU(0.2),
            nn.Linear(1024, 1),
        )
        _normal_init(self)


class _UpBlock(nn.Module):
    """SNGAN's generator block: BN-ReLU-upsample-conv3-BN-ReLU-conv3, plus an upsampled 1x1 conv shortcut."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate(torch.relu(self.bn1(x)), scale_factor=2.0)
        h = self.conv2(torch.relu(self.bn2(self.conv1(up))))
        return h + self.shortcut(nn.functional.interpolate(x, scale_factor=2.0))


class _DownBlock(nn.Module):
    """SNGAN's discriminator block: (ReLU-)conv3-ReLU-conv3, average-pooled when ``down``, plus a 1x1 conv
    shortcut; the first block takes the image itself (no ReLU before its first conv, pooling before the
    shortcut's conv)."""

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(torch.relu(self.conv1(x if self.first else torch.relu(x))))
        pool = nn.functional.avg_pool2d
        if not self.down:
            return h + self.shortcut(x)
        skip = self.shortcut(pool(x, 2)) if self.first else pool(self.shortcut(x), 2)
        return pool(h, 2) + skip


class ResNetGenerator(nn.Module):
    """z (B, latent_dim) -> image (B, channels, S, S) in [-1, 1] (SNGAN's ResNet generator): a linear stem to
    ``width`` channels at S / 2^k, k residual blocks doubling the size, then BN-ReLU-conv3-Tanh."""

    def __init__(self, latent_dim: int = 128, channels: int = 3, image_size: int = 32, width: int = 128):
        super().__init__()
        base, steps = _base_and_steps(image_size)
        self.stem = nn.Sequential(nn.Linear(latent_dim, width * base * base), nn.Unflatten(1, (width, base, base)))
        self.blocks = nn.Sequential(*[_UpBlock(width, width) for _ in range(steps)])
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.stem(z)))


class ResNetCritic(nn.Module):
    """image (B, channels, S, S) -> score (B, 1) (SNGAN's ResNet discriminator): residual blocks halving the
    size down to S / 2^k, one more at that size, ReLU, sum over positions, a linear head. No normalization
    layers, so per-sample penalties are well defined; use :func:`spectral_normalized` for SNGAN."""

    def __init__(self, channels: int = 3, image_size: int = 32, width: int = 128):
        super().__init__()
        _, steps = _base_and_steps(image_size)
        blocks = [_DownBlock(channels, width, True, first=True)]
        blocks += [_DownBlock(width, width, True) for _ in range(steps - 1)]
        self.blocks = nn.Sequential(*blocks, _DownBlock(width, width, False))
        self.head = nn.Linear(width, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.blocks(x)).sum(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def spectral_normalized(critic: nn.Module) -> nn.Module:
    """``critic`` with spectral normalization (Miyato et al., 2018; ``torch.nn.utils.parametrizations``) on every
    linear, convolution and embedding layer: each layer's weight divided by its largest singular value, estimated
    by one power iteration per call, which bounds the critic's Lipschitz constant."""
    from torch.nn.utils.parametrizations import spectral_norm

    for module in list(critic.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding)):
            spectral_norm(module)
    return critic


class ProjectionCritic(nn.Module):
    """The projection discriminator (Miyato & Koyama, 2018): ``D(x, y) = head(phi(x)) + <embed(y), phi(x)>``
    with ``phi`` and ``head`` the ``features`` and ``head`` of ``critic``: (B, ...) samples and (B,) class
    indices in [0, classes) -> (B, 1) scores."""

    def __init__(self, critic: nn.Module, classes: int):
        super().__init__()
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ValueError(f"classes must be an int >= 2, got {classes!r}")
        self.critic = critic
        self.embed = nn.Embedding(classes, critic.head.in_features)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.critic.features(x)
        return self.critic.head(h) + (self.embed(y) * h).sum(dim=1, keepdim=True)


class ConditionalGenerator(nn.Module):
    """A class-conditional generator: ``generator(cat(z, embed(y)))``, with ``generator`` built for
    ``latent_dim + embed_dim`` inputs: (B, latent_dim) noise and (B,) class indices -> samples."""

    def __init__(self, generator: nn.Module, classes: int, embed_dim: int):
        super().__init__()
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ValueError(f"classes must be an int >= 2, got {classes!r}")
        self.generator, self.embed = generator, nn.Embedding(classes, embed_dim)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.generator(torch.cat([z, self.embed(y)], dim=1))


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

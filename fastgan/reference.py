"""Plain eager PyTorch in the reference's style: the oracle for the tests and the baseline for the benchmarks, with
the reference code's MLP pair (:class:`Generator`, :class:`Critic`).

Written independently of the fused ops (nothing here calls them), following the reference's formulas and code
shape: interpolation ``alpha*real + (1-alpha)*fake``, ``gradients.view(B, -1).norm(2, dim=1)``, and the
``p.data.clamp_`` loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.autograd import grad


class Generator(nn.Module):
    """The reference code's generator: (B, latent_dim) noise -> (B, img_size) samples in [-1, 1] (one hidden
    ReLU layer, Tanh out)."""

    def __init__(self, latent_dim: int = 100, img_size: int = 784, hidden: int = 128):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, img_size), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)


class Critic(nn.Module):
    """The reference code's critic: (B, img_size) samples -> (B, 1) scores (one hidden ReLU layer)."""

    def __init__(self, img_size: int = 784, hidden: int = 128):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(img_size, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``alpha * real + (1 - alpha) * fake`` with ``alpha`` (B,) or (B, 1, ...) broadcast per sample."""
    alpha = alpha.reshape((real.shape[0],) + (1,) * (real.dim() - 1))
    return alpha * real + (1 - alpha) * fake


def gradient_norm_penalty(
    gradients: torch.Tensor, center: float = 1.0, one_sided: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean((||g_i|| - c)^2)`` (or of ``max(0, ||g_i|| - c)^2``); returns ``(penalty, norms)``."""
    norms = gradients.reshape(gradients.size(0), -1).norm(2, dim=1)
    deviation = norms - center
    if one_sided:
        deviation = torch.relu(deviation)
    return (deviation**2).mean(), norms


def penalty_at(
    D: Callable[[torch.Tensor], torch.Tensor], interpolates: torch.Tensor, center: float = 1.0, one_sided: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The penalty of ``D``'s input gradient at the points ``interpolates`` (made leaves here)."""
    if not interpolates.requires_grad:
        interpolates.requires_grad_(True)
    d_interpolates = D(interpolates)
    gradients = grad(
        outputs=d_interpolates,
        inputs=interpolates,
        grad_outputs=torch.ones_like(d_interpolates),
        create_graph=True,
        retain_graph=True,
        only_inputs=True,
    )[0]
    return gradient_norm_penalty(gradients, center, one_sided)


def gradient_penalty(
    D: Callable[[torch.Tensor], torch.Tensor],
    real_samples: torch.Tensor,
    fake_samples: torch.Tensor,
    alpha: torch.Tensor,
    center: float = 1.0,
    one_sided: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's WGAN-GP penalty with a given alpha and the centre/one-sided variants; ``(penalty, norms)``."""
    return penalty_at(D, interpolate(real_samples, fake_samples, alpha), center, one_sided)


def compute_gradient_penalty(
    D: Callable[[torch.Tensor], torch.Tensor],
    real_samples: torch.Tensor,
    fake_samples: torch.Tensor,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The reference's function: alpha from ``torch.rand((B, 1))`` on the CPU generator, moved to ``device``."""
    device = real_samples.device if device is None else device
    alpha = torch.rand((real_samples.size(0), 1)).to(device)
    return gradient_penalty(D, real_samples, fake_samples, alpha)[0]


def clip_weights_(parameters: Iterable[torch.Tensor] | torch.nn.Module, clip_value: float) -> None:
    """The reference's loop: ``p.data.clamp_(-c, c)`` for every parameter."""
    if isinstance(parameters, torch.nn.Module):
        parameters = parameters.parameters()
    for p in parameters:
        p.data.clamp_(-clip_value, clip_value)


# Losses, written the way the reference document and the usual PyTorch GAN code write them.


def wgan_critic_loss(real_validity: torch.Tensor, fake_validity: torch.Tensor) -> torch.Tensor:
    return torch.mean(fake_validity) - torch.mean(real_validity)


def wgan_generator_loss(fake_validity: torch.Tensor) -> torch.Tensor:
    return -torch.mean(fake_validity)


def lsgan_discriminator_loss(real_pred, fake_pred, a: float = 0.0, b: float = 1.0) -> torch.Tensor:
    """The reference's ``(MSELoss(real, valid) + MSELoss(fake, fake_label)) / 2`` with labels b and a."""
    criterion = torch.nn.MSELoss()
    return (
        criterion(real_pred, torch.full_like(real_pred, b)) + criterion(fake_pred, torch.full_like(fake_pred, a))
    ) / 2


def lsgan_generator_loss(fake_pred, c: float = 1.0, half: bool = True) -> torch.Tensor:
    """The paper's ``0.5 E[(D - c)^2]``; ``half=False`` is the reference's ``MSELoss(fake, valid)``."""
    loss = torch.nn.MSELoss()(fake_pred, torch.full_like(fake_pred, c))
    return 0.5 * loss if half else loss


def ns_discriminator_loss(real_logits, fake_logits, label_smoothing: float = 0.0) -> torch.Tensor:
    """BCE with real target ``1 - label_smoothing`` (one-sided label smoothing) and fake target 0."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    real_target = torch.full_like(real_logits, 1.0 - label_smoothing)
    return bce(real_logits, real_target) + bce(fake_logits, torch.zeros_like(fake_logits))


def ns_generator_loss(fake_logits) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def hinge_discriminator_loss(real_out, fake_out) -> torch.Tensor:
    return torch.relu(1 - real_out).mean() + torch.relu(1 + fake_out).mean()


def hinge_generator_loss(fake_out) -> torch.Tensor:
    return -fake_out.mean()


def rpgan_discriminator_loss(real_out, fake_out) -> torch.Tensor:
    """R3GAN's relativistic pairing: ``softplus(-(D(real) - D(fake)))`` per pair, averaged."""
    relativistic = real_out.view(-1) - fake_out.view(-1)
    return torch.nn.functional.softplus(-relativistic).mean()


def rpgan_generator_loss(real_out, fake_out) -> torch.Tensor:
    relativistic = fake_out.view(-1) - real_out.view(-1)
    return torch.nn.functional.softplus(-relativistic).mean()


def ragan_discriminator_loss(real_out, fake_out) -> torch.Tensor:
    """ESRGAN's relativistic average loss: BCE of each score minus the other batch's mean, halved."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    real_rel, fake_rel = real_out - fake_out.mean(), fake_out - real_out.mean()
    return (bce(real_rel, torch.ones_like(real_rel)) + bce(fake_rel, torch.zeros_like(fake_rel))) / 2


def ragan_generator_loss(real_out, fake_out) -> torch.Tensor:
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    real_rel, fake_rel = real_out - fake_out.mean(), fake_out - real_out.mean()
    return (bce(real_rel, torch.zeros_like(real_rel)) + bce(fake_rel, torch.ones_like(fake_rel))) / 2


# Penalties at real or fake samples.


def squared_gradient_norm(D: Callable[[torch.Tensor], torch.Tensor], samples: torch.Tensor):
    """R1 (at real samples) / R2 (at fake samples): ``mean ||grad D(x)||^2``; returns ``(penalty, norms)``."""
    return penalty_at(D, samples.detach().clone(), center=0.0)


def dragan_penalty(D, real_samples: torch.Tensor, alpha: torch.Tensor, noise: torch.Tensor, center: float = 1.0):
    """DRAGAN as StudioGAN writes it: ``x = real + alpha * 0.5 * std(real) * noise``; ``(penalty, norms)``."""
    alpha = alpha.reshape((real_samples.shape[0],) + (1,) * (real_samples.dim() - 1))
    differences = 0.5 * real_samples.std() * noise
    return penalty_at(D, (real_samples + alpha * differences).detach(), center)


def approximate_penalty(D, samples: torch.Tensor, noise: torch.Tensor, sigma: float = 0.01) -> torch.Tensor:
    """Seaweed-APT's finite-difference R1 (at real samples) / R2 (at fake ones), unweighted:
    ``mean((D(x) - D(x + sigma * noise))^2)`` with ``noise`` ~ N(0, I) of the samples' shape."""
    d = D(samples)
    d_perturbed = D(samples + sigma * noise)
    return ((d - d_perturbed) ** 2).mean()


# DiffAugment (Zhao et al., 2020) in its code's shape: brightness, saturation, contrast, then a translation that
# pads with zeros and gathers through a meshgrid, then a cutout mask. Each sample's random numbers are a row of
# ``params`` (B, 10): u_0..u_6 for the ops, then flags (nonzero: apply color, translation, cutout to it).


def diff_augment(
    x: torch.Tensor,
    params: torch.Tensor,
    policy: str = "color,translation,cutout",
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
) -> torch.Tensor:
    u = params.float()
    for op in policy.split(","):
        if op == "color":
            x = rand_color(x, u)
        elif op == "translation":
            x = rand_translation(x, u, translation_ratio)
        elif op == "cutout":
            x = rand_cutout(x, u, cutout_ratio)
    return x


def _per_image(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.to(x.dtype).view(-1, 1, 1, 1)


def rand_color(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    on = u[:, 7] != 0
    x = x + _per_image(torch.where(on, u[:, 0] - 0.5, 0.0), x)
    x_mean = x.mean(dim=1, keepdim=True)
    x = (x - x_mean) * _per_image(torch.where(on, u[:, 1] * 2, 1.0), x) + x_mean
    x_mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - x_mean) * _per_image(torch.where(on, u[:, 2] + 0.5, 1.0), x) + x_mean


def _randint(u: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """An integer in [low, high) from a uniform on [0, 1): floor(u * (high - low)) in fp32."""
    return torch.floor(u * (high - low)).long() + low


def rand_translation(x: torch.Tensor, u: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    shift_x, shift_y = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    on = (u[:, 8] != 0).long()
    translation_x = (_randint(u[:, 3], -shift_x, shift_x + 1) * on).view(-1, 1, 1)
    translation_y = (_randint(u[:, 4], -shift_y, shift_y + 1) * on).view(-1, 1, 1)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0), device=x.device),
        torch.arange(x.size(2), device=x.device),
        torch.arange(x.size(3), device=x.device),
        indexing="ij",
    )
    grid_x = torch.clamp(grid_x + translation_x + 1, 0, x.size(2) + 1)
    grid_y = torch.clamp(grid_y + translation_y + 1, 0, x.size(3) + 1)
    x_pad = torch.nn.functional.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return x_pad.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)


def rand_cutout(x: torch.Tensor, u: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    cutout_size = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    offset_x = _randint(u[:, 5], 0, x.size(2) + (1 - cutout_size[0] % 2)).view(-1, 1, 1)
    offset_y = _randint(u[:, 6], 0, x.size(3) + (1 - cutout_size[1] % 2)).view(-1, 1, 1)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0), device=x.device),
        torch.arange(cutout_size[0], device=x.device),
        torch.arange(cutout_size[1], device=x.device),
        indexing="ij",
    )
    grid_x = torch.clamp(grid_x + offset_x - cutout_size[0] // 2, min=0, max=x.size(2) - 1)
    grid_y = torch.clamp(grid_y + offset_y - cutout_size[1] // 2, min=0, max=x.size(3) - 1)
    mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype, device=x.device)
    mask[grid_batch, grid_x, grid_y] = 0
    mask = torch.where((u[:, 9] != 0).view(-1, 1, 1), mask, torch.ones_like(mask))
    return x * mask.unsqueeze(1)

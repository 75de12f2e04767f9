"""Plain eager PyTorch in the seed's style: the oracle for the tests and the baseline for the benchmarks.

Written independently of the fused ops (nothing here calls them), following the seed's formulas and code
shape: interpolation ``alpha*real + (1-alpha)*fake``, ``gradients.view(B, -1).norm(2, dim=1)``, and the
``p.data.clamp_`` loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.autograd import grad


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


def gradient_penalty(
    D: Callable[[torch.Tensor], torch.Tensor],
    real_samples: torch.Tensor,
    fake_samples: torch.Tensor,
    alpha: torch.Tensor,
    center: float = 1.0,
    one_sided: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's WGAN-GP penalty with a given alpha and the centre/one-sided variants; ``(penalty, norms)``."""
    interpolates = interpolate(real_samples, fake_samples, alpha).requires_grad_(True)
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


def compute_gradient_penalty(
    D: Callable[[torch.Tensor], torch.Tensor],
    real_samples: torch.Tensor,
    fake_samples: torch.Tensor,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The seed's function: alpha from ``torch.rand((B, 1))`` on the CPU generator, moved to ``device``."""
    device = real_samples.device if device is None else device
    alpha = torch.rand((real_samples.size(0), 1)).to(device)
    return gradient_penalty(D, real_samples, fake_samples, alpha)[0]


def clip_weights_(parameters: Iterable[torch.Tensor] | torch.nn.Module, clip_value: float) -> None:
    """The seed's loop: ``p.data.clamp_(-c, c)`` for every parameter."""
    if isinstance(parameters, torch.nn.Module):
        parameters = parameters.parameters()
    for p in parameters:
        p.data.clamp_(-clip_value, clip_value)

"""The critic's regularizers for limited data beside the penalties: LeCam (Tseng et al., 2021), balanced consistency
(bCR) and latent consistency (zCR) (Zhao et al., 2021), as the steps apply them.

- **LeCam**: ``mean(relu(D(x) - a_F)^2) + mean(relu(a_R - D(G(z)))^2)``, ``a_R`` and ``a_F`` moving averages
  (decay 0.99, from 0) of the critic's mean real and fake scores, updated with each batch before the term is
  taken (the authors' order). The averages live in one (2,) fp32 device tensor that the step reads as an input
  and writes after the update, so compiled and captured steps see its current values.
- **bCR**: ``lambda_real * mean((D(x) - D(T(x)))^2) + lambda_fake * mean((D(G(z)) - D(T(G(z))))^2)`` with ``T``
  a fused augmentation (:mod:`fastgan.augment`; translation by default, drawn per sample).
- **zCR**: the critic's ``lambda_dis * mean((D(G(z)) - D(G(z + dz)))^2)`` with ``dz ~ N(0, sigma^2)``, on samples
  the caller generates from the moved latents; the generator's ``-lambda_gen * mean((G(z) - G(z + dz))^2)``
  (StudioGAN's mean squared errors).
"""

from __future__ import annotations

from typing import Any

import torch

from . import _input_checks
from .augment import Policy, policy_of

LECAM_WEIGHT = 0.3  # LeCam's lambda with DiffAugment on CIFAR (Tseng et al.)
LECAM_DECAY = 0.99
BCR_WEIGHTS = (10.0, 10.0)  # bCR's lambda_real, lambda_fake (Zhao et al. 2021)
BCR_POLICY = "translation"
ZCR_WEIGHTS = (5.0, 0.5)  # zCR's lambda_dis, lambda_gen
ZCR_SIGMA = 0.03  # zCR's latent noise scale


class LeCam:
    """LeCam's weight, decay and moving averages: ``ema`` (2,) fp32, the real then the fake anchor."""

    def __init__(self, weight: float = LECAM_WEIGHT, decay: float = LECAM_DECAY):
        self.weight = _input_checks.positive_real("lecam_weight", weight)
        decay = _input_checks.finite_real("lecam_decay", decay)
        if not 0 <= decay < 1:
            raise ValueError(f"lecam_decay must be in [0, 1), got {decay!r}")
        self.decay = decay
        self.ema = torch.zeros(2)

    def to(self, device: torch.device) -> None:
        """Keep the averages on ``device`` (before a step first runs: a captured graph holds their address)."""
        if self.ema.device != device:
            self.ema = self.ema.to(device)

    def term(
        self, real_out: torch.Tensor, fake_out: torch.Tensor, ema: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The regularizer (0-dim fp32) of (B,) or (B, 1) scores and the averages moved by this batch (2,)."""
        acc = torch.promote_types(real_out.dtype, torch.float32)  # fp32, fp64 for a float64 check
        real, fake = real_out.to(acc).reshape(-1), fake_out.to(acc).reshape(-1)
        means = torch.stack([real.detach().mean(), fake.detach().mean()])
        moved = self.decay * ema.to(acc) + (1.0 - self.decay) * means
        value = torch.relu(real - moved[1]).square().mean() + torch.relu(moved[0] - fake).square().mean()
        return value, moved

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema.detach().cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.copy_(state["ema"].to(self.ema.device))


def weights(name: str, value: object) -> tuple[float, float]:
    """A pair of non-negative weights from a number (both) or a pair, ``ValueError``/``TypeError`` naming it."""
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be a number or a pair of numbers, got {value!r}")
    first, second = (_input_checks.non_negative_real(name, v) for v in pair)
    return first, second


def consistency_policy(policy: object) -> Policy:
    """bCR's augmentation: a :func:`fastgan.augment` policy (``ValueError`` naming ``bcr_policy``)."""
    try:
        return policy_of(policy)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"bcr_policy: {exc}") from None

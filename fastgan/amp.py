"""The critic's input gradient, plain or under mixed precision with a ``GradScaler`` (PyTorch's AMP recipe)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import _input_checks
from .distributed import refuse_static_graph

# Largest loss scale used for a critic's input gradient: leaves 64x headroom below fp16's largest value for
# gradients that grow inside the critic, while lifting tiny ones 1024x away from underflow.
MAX_PENALTY_SCALE = 2.0**10


def input_gradients(
    critic: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    scaler: torch.amp.GradScaler | None,
    module: object = None,
) -> torch.Tensor:
    """``d sum(critic(x)) / d x`` with ``create_graph=True``, shape and dtype of ``x`` (fp32 under a scaler).
    ``critic`` must return one score per sample, (B,) or (B, 1) (else ``ValueError``; see
    :func:`fastgan._input_checks.critic_scores` for critics that score groups: their ``pack`` is read from ``module``
    where ``critic`` is a function calling it).

    With an enabled ``scaler`` the critic's output is scaled before differentiating (small gradients survive
    fp16) and the gradient unscaled in fp32, with no host sync (the step stays capturable).
    """
    refuse_static_graph(critic)
    scores = _input_checks.critic_scores(critic(x), x.shape[0], critic if module is None else module)
    if scaler is None or not scaler.is_enabled():
        (grads,) = torch.autograd.grad(scores, x, grad_outputs=torch.ones_like(scores), create_graph=True)
        return grads
    # The scale is read as a device tensor (scaler.scale of a one), not with get_scale(), which syncs the host.
    # It is capped: every sample's output gradient equals the scale, and the scaler's default 2^16 already
    # overflows fp16 (max 65504) on its way into the critic; when even the cap overflows, the loss is inf,
    # the scaler skips the step and lowers its scale below the cap.
    scale = scaler.scale(torch.ones((), device=scores.device, dtype=torch.float32)).clamp(max=MAX_PENALTY_SCALE)
    scaled = scores.float() * scale
    (grads,) = torch.autograd.grad(scaled, x, grad_outputs=torch.ones_like(scaled), create_graph=True)
    return grads.float() / scale

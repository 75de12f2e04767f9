"""The per-sample gradient-norm penalty as one fused op: ``mean_i phi(||g_i||_2)`` on given gradients."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from . import _input_checks
from ._rows import empty_rows_like, rows_like
from .backend import launchers, uses_triton
from .kernels.accumulator import accumulator_dtype


class _Penalty(torch.autograd.Function):
    """The penalty and its one-pass backward: the Triton kernels when ``fused``, else eager PyTorch.

    The backward is first order: the second order flows through the critic's graph that produced ``grads``.
    """

    @staticmethod
    def forward(ctx, grads: torch.Tensor, center: float, one_sided: bool, fused: bool):
        if fused:
            grads = rows_like(grads, grads)
            penalty, norms = launchers("norm_penalty").penalty_fwd(grads, center, one_sided, check=False)
        else:
            penalty, norms = penalty_fwd_torch(grads, center, one_sided)
        ctx.save_for_backward(grads, norms)
        ctx.center, ctx.one_sided, ctx.fused = center, one_sided, fused
        ctx.mark_non_differentiable(norms)
        return penalty, norms

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_penalty: torch.Tensor, _grad_norms: torch.Tensor):
        grads, norms = ctx.saved_tensors
        if ctx.fused:
            d_grads = launchers("norm_penalty").penalty_bwd(
                grads, norms, grad_penalty, empty_rows_like(grads), ctx.center, ctx.one_sided, check=False
            )
        else:
            d_grads = _penalty_bwd_torch(grads, norms, grad_penalty, ctx.center, ctx.one_sided)
        return d_grads, None, None, None


def _deviation(norms: torch.Tensor, center: float, one_sided: bool) -> torch.Tensor:
    dev = norms - center
    return dev.clamp_min(0.0) if one_sided else dev  # clamp_min keeps NaN


def penalty_fwd_torch(grads: torch.Tensor, center: float, one_sided: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The penalty (0-dim) and the (B,) norms of checked (B, ...) ``grads`` in plain PyTorch, fp32 (fp64 for fp64):
    the eager path of the fused op, and what ``torch.func`` and ``torch.compile`` differentiate themselves."""
    acc = accumulator_dtype(grads.dtype)
    if grads.dim() == 1:
        norms = grads.abs().to(acc)
    else:
        # vector_norm over the trailing dims reads channels_last and strided views without a copy.
        norms = torch.linalg.vector_norm(grads, dim=tuple(range(1, grads.dim())), dtype=acc)
    return _deviation(norms, center, one_sided).square().mean(), norms


def _penalty_bwd_torch(
    grads: torch.Tensor, norms: torch.Tensor, grad_penalty: torch.Tensor, center: float, one_sided: bool
) -> torch.Tensor:
    # d/dg of mean_i phi(n_i) = phi'(n_i) * g_i / (n_i * B); zero where n_i = 0, NaN kept.
    coef = (_deviation(norms, center, one_sided) * (2.0 / grads.shape[0]) / norms).masked_fill(norms == 0, 0.0)
    coef = (coef * grad_penalty).reshape((-1,) + (1,) * (grads.dim() - 1))
    return (grads * coef).to(grads.dtype)  # computed in fp32 and rounded once, as the kernel does


def norm_penalty(grads: torch.Tensor, center: float, one_sided: bool, return_norms: bool, fused: bool | None = None):
    """The penalty of checked arguments: the kernels when ``fused``, else the eager path; None: the backend
    rule's choice for ``grads``' device (a step that asked once passes its answer)."""
    fused = uses_triton(grads.device) if fused is None else fused
    penalty, norms = _Penalty.apply(grads, center, one_sided, fused)
    return (penalty, norms) if return_norms else penalty


def gradient_norm_penalty(
    grads: torch.Tensor, center: float = 1.0, one_sided: bool = False, return_norms: bool = False
):
    """Mean over samples of phi(||g_i||_2), with phi(n) = (n - center)^2, or max(0, n - center)^2 if one-sided.

    ``center=1`` is WGAN-GP's two-sided penalty, ``one_sided=True`` WGAN-LP's, ``center=0`` the zero-centred
    penalty (R1/R2's mean squared norm). A sample whose gradient is all zero contributes a zero gradient, never
    NaN; NaN in a sample gives a NaN penalty.

    Args:
        grads: (B, ...) floating gradients (fp32, fp16, bf16 or fp64), one sample per leading index, any layout.
        center: the target norm c (finite).
        one_sided: penalise only norms above ``center``.
        return_norms: also return the per-sample norms (free: the forward computes them anyway).

    Returns:
        The penalty, a 0-dim fp32 tensor (fp64 for fp64 ``grads``), differentiable with respect to ``grads``;
        with ``return_norms``, the tuple ``(penalty, norms)`` where ``norms`` is a detached (B,) tensor of the
        same dtype.
    """
    _input_checks.batched("grads", _input_checks.float_tensor("grads", grads))
    center = _input_checks.penalty_shape(center, one_sided)
    return norm_penalty(grads, center, one_sided, return_norms)

"""Per-sample interpolation between real and fake batches (the x_hat of WGAN-GP)."""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from . import _input_checks
from ._rows import empty_rows_like, rows_like
from .backend import launchers, requested_backend, uses_triton
from .kernels.accumulator import accumulator_dtype


class _Interpolation(torch.autograd.Function):
    """``fake + alpha * (real - fake)``: the Triton kernels when ``fused``, else eager PyTorch; the backward gives
    real, fake and alpha gradients in one pass."""

    @staticmethod
    def forward(ctx, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor, fused: bool) -> torch.Tensor:
        real, fake, alpha_rows, out = _forward(real, fake, alpha, fused)
        ctx.alpha_shape, ctx.alpha_dtype, ctx.fused = alpha.shape, alpha.dtype, fused
        # real and fake are only read for alpha's gradient; they also give the gradients their layout.
        ctx.save_for_backward(real, fake, alpha_rows)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        real, fake, alpha = ctx.saved_tensors
        need_real, need_fake, need_alpha, _ = ctx.needs_input_grad
        if ctx.fused:
            grad_out = rows_like(grad_out, real)
            d_real = empty_rows_like(real) if need_real else None
            d_fake = empty_rows_like(real) if need_fake else None
            d_alpha = launchers("interpolation").interpolation_bwd(
                grad_out, real, fake, alpha, d_real, d_fake, need_alpha, check=False
            )
        else:
            d_real, d_fake, d_alpha = _interpolation_bwd_torch(
                grad_out, real, fake, alpha, need_real, need_fake, need_alpha
            )
        if d_alpha is not None:
            d_alpha = d_alpha.to(ctx.alpha_dtype).reshape(ctx.alpha_shape)
        return d_real, d_fake, d_alpha, None


def _forward(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor, fused: bool):
    """The interpolates of checked tensors (no autograd), with the real, fake and (B,) alpha they were computed
    from (the kernels' copies where a layout needed one)."""
    alpha_rows = alpha if alpha.dim() == 1 else alpha.reshape(-1)
    if not fused:
        return real, fake, alpha_rows, _interpolation_fwd_torch(real, fake, alpha_rows)
    alpha_rows = alpha_rows.contiguous()
    real = rows_like(real, real)
    fake = rows_like(fake, real)
    return (
        real,
        fake,
        alpha_rows,
        launchers("interpolation").interpolation_fwd(real, fake, alpha_rows, empty_rows_like(real), check=False),
    )


def interpolated_points(
    real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor, fused: bool | None = None
) -> torch.Tensor:
    """:func:`interpolate` of detached tensors already checked (by :func:`fastgan._input_checks.pair`; ``alpha``
    (B,)), outside autograd: for points where a penalty takes a fresh input gradient (the whole steps), without
    the cost of an autograd Function whose graph would be cut right away. ``fused``: as in :func:`loss_of_terms`."""
    return _forward(real, fake, alpha, uses_triton(real.device) if fused is None else fused)[3]


def _per_sample(alpha: torch.Tensor, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return alpha.to(dtype).reshape((like.shape[0],) + (1,) * (like.dim() - 1))


def _interpolation_fwd_torch(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    # In fp32 like the kernel (fp64 for fp64): lerp in half precision would round alpha first.
    acc = accumulator_dtype(real.dtype)
    if real.dtype == acc:
        return torch.lerp(fake, real, _per_sample(alpha, real, acc))
    return torch.lerp(fake.to(acc), real.to(acc), _per_sample(alpha, real, acc)).to(real.dtype)


def _interpolation_bwd_torch(grad_out, real, fake, alpha, need_real: bool, need_fake: bool, need_alpha: bool):
    acc = accumulator_dtype(real.dtype)
    go = grad_out.to(acc)
    weight = _per_sample(alpha, real, acc)
    d_real = (go * weight).to(real.dtype) if need_real else None
    d_fake = (go - go * weight).to(real.dtype) if need_fake else None
    d_alpha = None
    if need_alpha:
        d_alpha = (go * (real.to(acc) - fake.to(acc))).reshape(real.shape[0], -1).sum(dim=1)
    return d_real, d_fake, d_alpha


def checked_alpha(alpha: object, real: torch.Tensor) -> torch.Tensor:
    """``alpha`` if it holds one floating weight per sample of ``real`` ((B,) or (B, 1, ..., 1)) on its device,
    ``torch.rand(B)`` on that device when None; else ``TypeError``/``ValueError`` naming it."""
    if alpha is None:
        return torch.rand(real.shape[0], device=real.device)
    return _input_checks.alpha(alpha, real)


def interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample interpolation ``x_hat = fake + alpha * (real - fake)``, i.e. ``alpha*real + (1-alpha)*fake``.

    Args:
        real: (B, ...) floating tensor, any rank; contiguous, channels_last or a batch-sliced view run
            without copies.
        fake: same shape, dtype and device as ``real``.
        alpha: one weight per sample, shape (B,) or (B, 1, ..., 1), any floating dtype, on the same device.
            When None, ``torch.rand(B)`` is drawn on ``real``'s device from its default generator
            (fp32; capturable in a CUDA graph).

    Returns:
        (B, ...) tensor of ``real``'s dtype (the kernels keep its sample memory format), computed in fp32
        (fp64 for fp64). Differentiable with respect to ``real``, ``fake`` and ``alpha``.
    """
    if alpha is None and type(real) is torch.Tensor and real.dim() > 0:
        alpha = checked_alpha(None, real)  # drawn first, so that the call's signature is known
    signature = _signature(real, fake, alpha)
    plan = _LAUNCH_READY.get(signature)
    if plan is not None and not _differentiated(real, fake, alpha):
        out = empty_rows_like(real)
        plan((real, fake, alpha, out))
        return out
    _input_checks.pair(real, fake)
    alpha = checked_alpha(alpha, real)
    fused = uses_triton(real.device)
    if not _differentiated(real, fake, alpha):
        out = _forward(real, fake, alpha, fused)[3]  # nothing to differentiate: no autograd Function to pay for
        # fake read as it is (dense samples ordered like real's, which makes real's dense too): no copy.
        if fused and signature is not None and alpha.is_contiguous() and rows_like(fake, real) is fake:
            _remember(signature, launchers("interpolation").interpolation_fwd_plan(real, fake, alpha, out))
        return out
    return _Interpolation.apply(real, fake, alpha, fused)


# The planned kernel launch of each signature (shape, strides, dtype, 16-byte alignment and device of real, fake
# and alpha; the backend asked for) whose checks passed and that the kernel reads as it is: a drop-in call costs
# little more than its launch.
_LAUNCH_READY: dict[tuple[object, ...] | None, Any] = {}


def _signature(real: object, fake: object, alpha: object) -> tuple[object, ...] | None:
    if not (type(real) is torch.Tensor and type(fake) is torch.Tensor and type(alpha) is torch.Tensor):
        return None  # no alpha to read yet, another type, or a subclass whose behaviour the checks must see
    if torch.compiler.is_compiling():
        return None
    return (
        *(real.shape, real.stride(), real.dtype, real.device, real.data_ptr() & 15),
        *(fake.shape, fake.stride(), fake.dtype, fake.device, fake.data_ptr() & 15),
        *(alpha.shape, alpha.stride(), alpha.dtype, alpha.device, alpha.data_ptr() & 15),
        requested_backend(),
    )


def _remember(signature: tuple[object, ...], plan: Any) -> None:
    if len(_LAUNCH_READY) >= 256:
        _LAUNCH_READY.clear()  # a run meets a handful: many more means shapes keep changing
    _LAUNCH_READY[signature] = plan


def _differentiated(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and (real.requires_grad or fake.requires_grad or alpha.requires_grad)

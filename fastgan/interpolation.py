"""Per-sample interpolation between real and fake batches (the x_hat of WGAN-GP)."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from . import _checks
from ._layout import empty_rows_like, rows_like
from .backend import uses_triton


class _InterpolateTriton(torch.autograd.Function):
    """Fused Triton interpolation; backward gives real, fake and alpha gradients in one pass."""

    @staticmethod
    def forward(ctx, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        from .kernels.interpolate import interpolate_fwd

        alpha_rows = alpha.reshape(-1).contiguous()
        real_rows = rows_like(real, real)
        fake_rows = rows_like(fake, real_rows)
        out = interpolate_fwd(real_rows, fake_rows, alpha_rows, empty_rows_like(real_rows))
        ctx.alpha_shape = alpha.shape
        ctx.alpha_dtype = alpha.dtype
        # real and fake are only read for alpha's gradient; they also give the gradients their layout.
        ctx.save_for_backward(real_rows, fake_rows, alpha_rows)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        from .kernels.interpolate import interpolate_bwd

        real, fake, alpha = ctx.saved_tensors
        need_real, need_fake, need_alpha = ctx.needs_input_grad
        grad_out = rows_like(grad_out, real)
        d_real = empty_rows_like(real) if need_real else None
        d_fake = empty_rows_like(real) if need_fake else None
        d_alpha = interpolate_bwd(grad_out, real, fake, alpha, d_real, d_fake, need_alpha)
        if d_alpha is not None:
            d_alpha = d_alpha.to(ctx.alpha_dtype).reshape(ctx.alpha_shape)
        return d_real, d_fake, d_alpha


def _interpolate_torch(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    weight = alpha.reshape((real.shape[0],) + (1,) * (real.dim() - 1))
    if real.dtype in (torch.float16, torch.bfloat16):
        # Interpolate in fp32 like the kernel does; lerp would otherwise round alpha to the input dtype.
        return torch.lerp(fake.float(), real.float(), weight.float()).to(real.dtype)
    return torch.lerp(fake, real, weight.to(real.dtype))


def check_pair(real: object, fake: object, real_name: str = "real", fake_name: str = "fake") -> None:
    """Raise unless ``real`` and ``fake`` are non-empty floating (B, ...) tensors alike in shape, dtype, device."""
    _checks.batched(real_name, _checks.float_tensor(real_name, real))
    _checks.float_tensor(fake_name, fake)
    _checks.same_shape(fake_name, fake, real_name, real)
    _checks.same_dtype(fake_name, fake, real_name, real)
    _checks.same_device(fake_name, fake, real_name, real)


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
        (B, ...) tensor of ``real``'s dtype and sample memory format, computed in fp32 (fp64 for fp64).
        Differentiable with respect to ``real``, ``fake`` and ``alpha``.
    """
    check_pair(real, fake)
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device)
    else:
        _checks.float_tensor("alpha", alpha)
        _checks.per_sample("alpha", alpha, real.shape[0])
        _checks.same_device("alpha", alpha, "real", real)
    if uses_triton(real.device):
        return _InterpolateTriton.apply(real, fake, alpha)
    return _interpolate_torch(real, fake, alpha)

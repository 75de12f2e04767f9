"""Per-sample interpolation x_hat = fake + alpha_i * (real - fake), computed in fp32 (fp64 for fp64).

Backward writes d real = alpha_i * go and d fake = (1 - alpha_i) * go in one pass, and, when alpha needs a
gradient, per-chunk fp32 partials of sum_j go_ij * (real_ij - fake_ij) that are summed afterwards in a fixed
order (deterministic, no atomics).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl

from . import _preconditions, _tiles
from ._tiles import row_chunk, row_tiles
from .accumulator import accumulator_dtype
from .launch import Planned, direct


@direct
@triton.jit
def interpolation_fwd_kernel(
    real_ptr,  # row i at real_ptr + i * real_stride, D dense elements
    fake_ptr,  # same sample layout as real
    alpha_ptr,  # (B,) contiguous, any float dtype
    out_ptr,  # written, same sample layout as real
    B,
    D,
    real_stride,
    fake_stride,
    out_stride,
    n_chunks,
    BLOCK_B: tl.constexpr,
    BLOCK_D: tl.constexpr,
    ITERS: tl.constexpr,
    ACC: tl.constexpr,
):
    _, _, rows, row_mask, col0 = row_chunk(n_chunks, B, BLOCK_B, BLOCK_D, ITERS)
    alpha = tl.load(alpha_ptr + rows, mask=row_mask, other=0.0).to(ACC)[:, None]
    for it in range(ITERS):
        cols = col0 + it * BLOCK_D + tl.arange(0, BLOCK_D)
        mask = row_mask[:, None] & (cols < D)[None, :]
        real = tl.load(real_ptr + rows[:, None] * real_stride + cols[None, :], mask=mask).to(ACC)
        fake = tl.load(fake_ptr + rows[:, None] * fake_stride + cols[None, :], mask=mask).to(ACC)
        out = fake + alpha * (real - fake)
        tl.store(out_ptr + rows[:, None] * out_stride + cols[None, :], out.to(out_ptr.dtype.element_ty), mask=mask)


@direct
@triton.jit
def interpolation_bwd_kernel(
    go_ptr,  # upstream gradient, row i at go_ptr + i * go_stride
    real_ptr,  # read only when GRAD_ALPHA
    fake_ptr,  # read only when GRAD_ALPHA
    alpha_ptr,  # (B,) contiguous
    d_real_ptr,  # written when GRAD_REAL, row stride d_stride
    d_fake_ptr,  # written when GRAD_FAKE, row stride d_stride
    alpha_partial_ptr,  # ACC (B, n_chunks), written when GRAD_ALPHA
    B,
    D,
    go_stride,
    real_stride,
    fake_stride,
    d_stride,
    n_chunks,
    BLOCK_B: tl.constexpr,
    BLOCK_D: tl.constexpr,
    ITERS: tl.constexpr,
    GRAD_REAL: tl.constexpr,
    GRAD_FAKE: tl.constexpr,
    GRAD_ALPHA: tl.constexpr,
    ACC: tl.constexpr,
):
    _, chunk, rows, row_mask, col0 = row_chunk(n_chunks, B, BLOCK_B, BLOCK_D, ITERS)
    alpha = tl.load(alpha_ptr + rows, mask=row_mask, other=0.0).to(ACC)[:, None]
    acc = tl.zeros([BLOCK_B, BLOCK_D], dtype=ACC)
    for it in range(ITERS):
        cols = col0 + it * BLOCK_D + tl.arange(0, BLOCK_D)
        mask = row_mask[:, None] & (cols < D)[None, :]
        go = tl.load(go_ptr + rows[:, None] * go_stride + cols[None, :], mask=mask, other=0.0).to(ACC)
        d_offs = rows[:, None] * d_stride + cols[None, :]
        if GRAD_REAL:
            tl.store(d_real_ptr + d_offs, (alpha * go).to(d_real_ptr.dtype.element_ty), mask=mask)
        if GRAD_FAKE:
            tl.store(d_fake_ptr + d_offs, ((1.0 - alpha) * go).to(d_fake_ptr.dtype.element_ty), mask=mask)
        if GRAD_ALPHA:
            real = tl.load(real_ptr + rows[:, None] * real_stride + cols[None, :], mask=mask, other=0.0)
            fake = tl.load(fake_ptr + rows[:, None] * fake_stride + cols[None, :], mask=mask, other=0.0)
            acc += go * (real.to(ACC) - fake.to(ACC))
    if GRAD_ALPHA:
        tl.store(alpha_partial_ptr + rows * n_chunks + chunk, tl.sum(acc, axis=1), mask=row_mask)


def interpolation_fwd(
    real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor, out: torch.Tensor, *, check: bool = True
) -> torch.Tensor:
    """Write ``fake + alpha * (real - fake)`` into ``out`` and return it.

    ``real``, ``fake``, ``out``: (B, ...) of one float dtype, device and dense sample layout; ``alpha``: (B,)
    contiguous, any float dtype. ``check=False`` skips the preconditions, for callers that established them
    (``fastgan``'s ops do).
    """
    if check:
        _preconditions.interpolation(real, fake, alpha)
        _preconditions.rows_like("out", out, "real", real)
    interpolation_fwd_kernel.planned(_fwd_key(real, fake, out), (real, fake, alpha, out), _fwd_plan)
    return out


def interpolation_fwd_plan(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor, out: torch.Tensor) -> Planned:
    """The planned forward launch of :func:`interpolation_fwd` for these tensors (checked; not under
    ``torch.compile``), to call as ``plan((real, fake, alpha, out))`` with any tensors of the same shapes, strides,
    dtypes, 16-byte alignments and device."""
    return interpolation_fwd_kernel.plan(_fwd_key(real, fake, out), (real, fake, alpha, out), _fwd_plan)


def _fwd_key(real: torch.Tensor, fake: torch.Tensor, out: torch.Tensor) -> tuple[Any, ...]:
    return (real.shape, real.dtype, real.stride(0), fake.stride(0), out.stride(0), _tiles.TARGET_PROGRAMS)


def _fwd_plan(shape: torch.Size, dtype: torch.dtype, real_stride: int, fake_stride: int, out_stride: int, _target: int):
    batch, width = shape[0], math.prod(shape[1:])
    tiles = row_tiles(batch, width)
    rest = (batch, width, real_stride, fake_stride, out_stride, tiles.n_chunks)
    return tiles.grid, rest, tiles.constants(dtype)


def interpolation_bwd(
    grad_out: torch.Tensor,
    real: torch.Tensor,
    fake: torch.Tensor,
    alpha: torch.Tensor,
    d_real: torch.Tensor | None,
    d_fake: torch.Tensor | None,
    need_alpha: bool,
    *,
    check: bool = True,
) -> torch.Tensor | None:
    """Fill ``d_real`` / ``d_fake`` (either may be None) and return d alpha.

    ``grad_out``, ``d_real``, ``d_fake``: laid out like ``real``. Returns the (B,) gradient (fp32, fp64 for
    fp64 inputs) of alpha when ``need_alpha``, else None. ``check=False`` skips the preconditions, for callers that
    established them (``fastgan``'s ops do).
    """
    if check:
        _preconditions.interpolation(real, fake, alpha)
        _preconditions.rows_like("grad_out", grad_out, "real", real)
        for name, d in (("d_real", d_real), ("d_fake", d_fake)):
            if d is not None:
                _preconditions.rows_like(name, d, "real", real)
        if d_real is not None and d_fake is not None and d_real.stride(0) != d_fake.stride(0):
            raise ValueError("d_real and d_fake must share one row stride")
    batch = grad_out.shape[0]
    acc = accumulator_dtype(real.dtype)
    written = d_real if d_real is not None else d_fake
    plan_key = (
        grad_out.shape,
        real.dtype,
        grad_out.stride(0),
        real.stride(0),
        fake.stride(0),
        written.stride(0) if written is not None else 0,
        d_real is not None,
        d_fake is not None,
        need_alpha,
        _tiles.TARGET_PROGRAMS,
    )
    n_chunks = row_tiles(batch, math.prod(grad_out.shape[1:])).n_chunks if need_alpha else 1
    partial = torch.empty(batch, n_chunks, dtype=acc, device=real.device) if need_alpha else None
    interpolation_bwd_kernel.planned(plan_key, (grad_out, real, fake, alpha, d_real, d_fake, partial), _bwd_plan)
    if partial is None:
        return None
    return partial[:, 0] if n_chunks == 1 else partial.sum(dim=1)


def _bwd_plan(shape, dtype, go_stride, real_stride, fake_stride, d_stride, grad_real, grad_fake, grad_alpha, _target):
    batch, width = shape[0], math.prod(shape[1:])
    tiles = row_tiles(batch, width)
    rest = (batch, width, go_stride, real_stride, fake_stride, d_stride, tiles.n_chunks)
    flags = dict(GRAD_REAL=grad_real, GRAD_FAKE=grad_fake, GRAD_ALPHA=grad_alpha)
    return tiles.grid, rest, tiles.constants(dtype, **flags)

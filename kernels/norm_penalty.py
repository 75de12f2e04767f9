"""Per-sample gradient-norm penalty: penalty = mean_i phi(||g_i||_2), phi(n) = (n - c)^2 or max(0, n - c)^2.

Forward: one pass over g accumulating fp32 sums of squares per sample. When a row fits in one column chunk the
same program finishes it (norm, phi, its row block's share of the mean); otherwise it writes a per-chunk
partial and a second small kernel finishes the rows. Backward: one pass writing dg = coef_i * g with
coef_i = grad_out / B * phi'(n_i) / n_i, and coef_i = 0 where n_i = 0 (a zero gradient, never NaN).
Norms use the correctly rounded square root. No atomics: the same inputs give bitwise the same outputs.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from . import _preconditions, _tiles
from ._tiles import next_power_of_2, row_chunk, row_tiles, tl_dtype
from .accumulator import accumulator_dtype
from .launch import direct


@triton.jit
def _row_deviation(norm, center, ONE_SIDED: tl.constexpr):
    dev = norm - center
    if ONE_SIDED:
        # Written so that NaN passes through (a comparison with NaN is false).
        dev = tl.where(dev < 0.0, 0.0, dev)
    return dev


@triton.jit
def _finish_rows(
    sumsq, rows, row_mask, rb, norms_ptr, block_out_ptr, B, center, ONE_SIDED: tl.constexpr, ACC: tl.constexpr
):
    # Correctly rounded square roots: tl.sqrt is approximate in fp32 (fp64's sqrt is already exact).
    if ACC == tl.float64:
        norm = tl.sqrt(sumsq)
    else:
        norm = tl.sqrt_rn(sumsq)
    tl.store(norms_ptr + rows, norm, mask=row_mask)
    dev = _row_deviation(norm, center, ONE_SIDED)
    phi = tl.where(row_mask, dev * dev, 0.0)
    tl.store(block_out_ptr + rb, tl.sum(phi, axis=0) / B)


@direct
@triton.jit(do_not_specialize=["center"])
def penalty_fwd_kernel(
    g_ptr,  # gradients, row i at g_ptr + i * g_stride, D dense elements
    partial_ptr,  # ACC (B, n_chunks) sums of squares per column chunk (unused when SINGLE_CHUNK)
    norms_ptr,  # ACC (B,) per-sample norms (written when SINGLE_CHUNK)
    block_out_ptr,  # ACC (n_row_blocks,) each row block's share of the mean penalty (when SINGLE_CHUNK)
    B,
    D,
    g_stride,
    n_chunks,
    center,
    BLOCK_B: tl.constexpr,
    BLOCK_D: tl.constexpr,
    ITERS: tl.constexpr,
    ONE_SIDED: tl.constexpr,
    ACC: tl.constexpr,
    SINGLE_CHUNK: tl.constexpr,
):
    rb, chunk, rows, row_mask, col0 = row_chunk(n_chunks, B, BLOCK_B, BLOCK_D, ITERS)
    acc = tl.zeros([BLOCK_B, BLOCK_D], dtype=ACC)
    for it in range(ITERS):
        cols = col0 + it * BLOCK_D + tl.arange(0, BLOCK_D)
        mask = row_mask[:, None] & (cols < D)[None, :]
        g = tl.load(g_ptr + rows[:, None] * g_stride + cols[None, :], mask=mask, other=0.0).to(ACC)
        acc += g * g
    sumsq = tl.sum(acc, axis=1)
    if SINGLE_CHUNK:
        _finish_rows(sumsq, rows, row_mask, rb, norms_ptr, block_out_ptr, B, center, ONE_SIDED, ACC)
    else:
        tl.store(partial_ptr + rows * n_chunks + chunk, sumsq, mask=row_mask)


@direct
@triton.jit(do_not_specialize=["center"])
def penalty_finish_kernel(
    partial_ptr,  # ACC (B, n_chunks) sums of squares per column chunk
    norms_ptr,  # ACC (B,) per-sample norms, written
    block_out_ptr,  # ACC (n_row_blocks,) each row block's share of the mean penalty, written
    B,
    n_chunks,
    center,
    BLOCK_B: tl.constexpr,
    BLOCK_C: tl.constexpr,
    ONE_SIDED: tl.constexpr,
    ACC: tl.constexpr,
):
    rb = tl.program_id(0)
    rows = rb.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    acc = tl.zeros([BLOCK_B, BLOCK_C], dtype=ACC)
    for c0 in range(0, n_chunks, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        mask = row_mask[:, None] & (cols < n_chunks)[None, :]
        acc += tl.load(partial_ptr + rows[:, None] * n_chunks + cols[None, :], mask=mask, other=0.0)
    _finish_rows(tl.sum(acc, axis=1), rows, row_mask, rb, norms_ptr, block_out_ptr, B, center, ONE_SIDED, ACC)


@direct
@triton.jit(do_not_specialize=["center"])
def penalty_bwd_kernel(
    g_ptr,  # gradients saved from forward, row i at g_ptr + i * g_stride
    dg_ptr,  # d penalty / d g, written, row i at dg_ptr + i * dg_stride
    norms_ptr,  # ACC (B,) per-sample norms from forward
    gout_ptr,  # one-element upstream gradient of the penalty (read on device: no host sync)
    B,
    D,
    g_stride,
    dg_stride,
    n_chunks,
    center,
    BLOCK_B: tl.constexpr,
    BLOCK_D: tl.constexpr,
    ITERS: tl.constexpr,
    ONE_SIDED: tl.constexpr,
    ACC: tl.constexpr,
):
    _, _, rows, row_mask, col0 = row_chunk(n_chunks, B, BLOCK_B, BLOCK_D, ITERS)
    norm = tl.load(norms_ptr + rows, mask=row_mask, other=1.0)
    dev = _row_deviation(norm, center, ONE_SIDED)
    gout = tl.load(gout_ptr).to(ACC)
    # d phi(n)/d g = phi'(n) * g / n; at n = 0 the gradient is 0 (as torch's norm backward). NaN passes.
    safe_norm = tl.where(norm == 0.0, 1.0, norm)
    coef = tl.where(norm == 0.0, 0.0, gout * 2.0 * dev / safe_norm / B)
    for it in range(ITERS):
        cols = col0 + it * BLOCK_D + tl.arange(0, BLOCK_D)
        mask = row_mask[:, None] & (cols < D)[None, :]
        g = tl.load(g_ptr + rows[:, None] * g_stride + cols[None, :], mask=mask, other=0.0).to(ACC)
        dg = coef[:, None] * g
        tl.store(dg_ptr + rows[:, None] * dg_stride + cols[None, :], dg.to(dg_ptr.dtype.element_ty), mask=mask)


def _rows_of(t: torch.Tensor) -> tuple[int, int]:
    batch = t.shape[0]
    return batch, t.numel() // batch


def penalty_fwd(
    g: torch.Tensor, center: float, one_sided: bool, *, check: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penalty and per-sample norms of ``g`` (B, ...) with dense samples, any float dtype.

    Returns ``(penalty, norms)``: a 0-dim tensor and a (B,) tensor on ``g``'s device, both fp32 (fp64 for fp64
    ``g``). ``check=False`` skips the preconditions, for callers that established them (``fastgan``'s ops do).
    """
    if check:
        _preconditions.rows("g", g)
    batch, width = _rows_of(g)
    tiles = row_tiles(batch, width)
    single = tiles.n_chunks == 1
    acc = accumulator_dtype(g.dtype)
    norms = torch.empty(batch, dtype=acc, device=g.device)
    # One row block: the kernel writes the penalty itself into a 0-dim tensor.
    block_out = torch.empty(tiles.n_row_blocks if tiles.n_row_blocks > 1 else (), dtype=acc, device=g.device)
    partial = norms if single else torch.empty(batch, tiles.n_chunks, dtype=acc, device=g.device)
    center = float(center)
    penalty_fwd_kernel.planned(
        (g.shape, g.dtype, g.stride(0), center, one_sided, _tiles.TARGET_PROGRAMS),
        (g, partial, norms, block_out),
        _fwd_plan,
    )
    if not single:
        penalty_finish_kernel.planned(
            (g.shape, g.dtype, center, one_sided, _tiles.TARGET_PROGRAMS), (partial, norms, block_out), _finish_plan
        )
    return (block_out if tiles.n_row_blocks == 1 else block_out.sum()), norms


def _fwd_plan(shape: torch.Size, dtype: torch.dtype, stride: int, center: float, one_sided: bool, _target: int):
    batch, width = shape[0], math.prod(shape[1:])
    tiles = row_tiles(batch, width)
    constants = tiles.constants(dtype, ONE_SIDED=one_sided, SINGLE_CHUNK=tiles.n_chunks == 1)
    return tiles.grid, (batch, width, stride, tiles.n_chunks, center), constants


def _finish_plan(shape: torch.Size, dtype: torch.dtype, center: float, one_sided: bool, _target: int):
    batch = shape[0]
    tiles = row_tiles(batch, math.prod(shape[1:]))
    # Several chunks per row only happen for rows wider than a tile, so BLOCK_B is 1 here.
    block_c = min(next_power_of_2(tiles.n_chunks), 1024)
    constants = dict(
        BLOCK_B=tiles.BLOCK_B,
        BLOCK_C=block_c,
        ONE_SIDED=one_sided,
        ACC=tl_dtype(accumulator_dtype(dtype)),
    )
    return (tiles.n_row_blocks,), (batch, tiles.n_chunks, center), constants


def penalty_bwd(
    g: torch.Tensor,
    norms: torch.Tensor,
    grad_out: torch.Tensor,
    dg: torch.Tensor,
    center: float,
    one_sided: bool,
    *,
    check: bool = True,
) -> torch.Tensor:
    """Write d penalty / d g into ``dg`` (``g``'s shape, dtype and sample layout) and return it.

    ``norms``: the (B,) norms from :func:`penalty_fwd`; ``grad_out``: the penalty's one-element upstream
    gradient. ``check=False`` skips the preconditions, for callers that established them (``fastgan``'s ops do).
    """
    acc = accumulator_dtype(g.dtype)
    if check:
        _preconditions.rows("g", g)
        _preconditions.rows_like("dg", dg, "g", g)
        _preconditions.vector("norms", norms, g.shape[0], "g", g, dtypes=(acc,))
        _preconditions.scalar("grad_out", grad_out, "g", g)
    penalty_bwd_kernel.planned(
        (g.shape, g.dtype, g.stride(0), dg.stride(0), float(center), one_sided, _tiles.TARGET_PROGRAMS),
        (g, dg, norms, grad_out),
        _bwd_plan,
    )
    return dg


def _bwd_plan(
    shape: torch.Size, dtype: torch.dtype, g_stride: int, dg_stride: int, center: float, one_sided: bool, _target: int
):
    batch, width = shape[0], math.prod(shape[1:])
    tiles = row_tiles(batch, width)
    constants = tiles.constants(dtype, ONE_SIDED=one_sided)
    return tiles.grid, (batch, width, g_stride, dg_stride, tiles.n_chunks, center), constants

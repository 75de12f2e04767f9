"""DiffAugment's ops (brightness, saturation, contrast; integer translation with zero fill; cutout) fused, forward and
adjoint, for (B, C, H, W) images of any strides.

For fixed per-sample parameters the augmentation is affine in x: with ``t`` the translation, ``w(p)`` one where
output pixel ``p`` is neither cut out nor filled (``p + t`` inside the image), ``m`` the channel mean at a pixel
and ``mu`` the sample's mean,

    out[c, p] = w(p) * (k s x[c, p+t] + (k - k s) m[p+t] + (1 - k) mu + beta)

(brightness ``beta``, saturation ``s``, contrast ``k``, applied in that order). Its linear part is ``W S_t L`` with
``L`` symmetric, so the adjoint is ``L S_-t W``: the same kernel with the shift reversed, the weight read at the
source and the sample's mean taken of the weighted gradient. The adjoint's adjoint is the forward without
``beta``, so every order of derivative is one more launch.

Each sample's parameters come from ten uniforms in ``params`` (B, 10) fp32, mapped here (and by the eager path in
``fastgan.augment``, tested element-wise against these kernels): see :data:`PARAMS`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._tiles import cdiv, next_power_of_2, tl_dtype
from .accumulator import accumulator_dtype
from .launch import direct

# The columns of ``params``: seven uniforms on [0, 1) and three flags (1.0: apply that group of ops to the sample).
PARAMS = (
    "brightness",  # beta = u - 0.5
    "saturation",  # s = 2 u
    "contrast",  # k = u + 0.5
    "shift_rows",  # t_h = floor(u (2 S_h + 1)) - S_h, S_h the largest shift in rows
    "shift_cols",
    "cut_rows",  # first cut row = floor(u (H + 1 - C_h % 2)) - C_h // 2, C_h the cutout's height
    "cut_cols",
    "apply_color",
    "apply_translation",
    "apply_cutout",
)
N_PARAMS = len(PARAMS)
# Elements per [BLOCK_B, BLOCK_C, BLOCK_P] tile: 8 a thread over 8 warps, as the row kernels' tiles.
_TILE = 2048
_NUM_WARPS = 8


@triton.jit
def _geometry(params_ptr, b, rows, H, W, SHIFT_H, SHIFT_W, CUT_H, CUT_W):
    """The translation (rows, cols) of samples ``b`` (BLOCK_B,) and their cutouts' first row and column (H where
    not cut), each (BLOCK_B, 1). An index is ``floor(u * n)`` in fp32, below n for every u < 1 (the largest,
    1 - 2^-24, times an integer n rounds to nearest below n). (One helper, written out: each call of a jit helper
    costs the interpreter a millisecond.)"""
    row = params_ptr + b * 10
    n_h = 2 * SHIFT_H + 1
    n_w = 2 * SHIFT_W + 1
    m_h = H + 1 - CUT_H % 2
    m_w = W + 1 - CUT_W % 2
    t_h = tl.floor(tl.load(row + 3, mask=rows, other=0.0) * n_h).to(tl.int32) - SHIFT_H
    t_w = tl.floor(tl.load(row + 4, mask=rows, other=0.0) * n_w).to(tl.int32) - SHIFT_W
    top = tl.floor(tl.load(row + 5, mask=rows, other=0.0) * m_h).to(tl.int32) - CUT_H // 2
    left = tl.floor(tl.load(row + 6, mask=rows, other=0.0) * m_w).to(tl.int32) - CUT_W // 2
    move = tl.load(row + 8, mask=rows, other=0.0) != 0.0
    cut = tl.load(row + 9, mask=rows, other=0.0) != 0.0
    t_h = tl.where(move, t_h, 0)
    t_w = tl.where(move, t_w, 0)
    top = tl.where(cut, top, H)
    return t_h[:, None], t_w[:, None], top[:, None], left[:, None]


@triton.jit
def _tile(B, H, W, n_blocks, BLOCK_B: tl.constexpr, BLOCK_P: tl.constexpr):
    """This program's samples (BLOCK_B,) and which are in the batch, and its pixels' rows and columns (1,
    BLOCK_P) and which are in the image."""
    pid = tl.program_id(0).to(tl.int64)
    b = (pid // n_blocks) * BLOCK_B + tl.arange(0, BLOCK_B)
    p = (pid % n_blocks) * BLOCK_P + tl.arange(0, BLOCK_P)
    return pid, b, b < B, (p // W)[None, :], (p % W)[None, :], (p < H * W)[None, :]


@direct
@triton.jit
def augment_sums_kernel(
    src_ptr,  # (B, C, H, W), any strides
    params_ptr,  # (B, 10) fp32 contiguous
    partial_ptr,  # ACC (B, n_blocks), written: each sample's sum over a pixel block's channels
    B,
    C,
    H,
    W,
    s_b,
    s_c,
    s_h,
    s_w,
    SHIFT_H,
    SHIFT_W,
    CUT_H,
    CUT_W,
    n_blocks,
    WEIGHTED: tl.constexpr,  # weigh pixel p by the forward's w(p) (the adjoint's mean)
    BLOCK_B: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
    ACC: tl.constexpr,
):
    pid, b, rows, i, j, here = _tile(B, H, W, n_blocks, BLOCK_B, BLOCK_P)
    valid = rows[:, None] & here
    weight = tl.full([BLOCK_B, BLOCK_P], 1.0, ACC)
    if WEIGHTED:
        t_h, t_w, top, left = _geometry(params_ptr, b, rows, H, W, SHIFT_H, SHIFT_W, CUT_H, CUT_W)
        si = i + t_h
        sj = j + t_w
        valid = valid & (si >= 0) & (si < H) & (sj >= 0) & (sj < W)
        weight = ((i < top) | (i >= top + CUT_H) | (j < left) | (j >= left + CUT_W)).to(ACC)
    acc = tl.zeros([BLOCK_B, BLOCK_C, BLOCK_P], dtype=ACC)
    pixels = b[:, None] * s_b + i * s_h + j * s_w
    for c0 in range(0, C, BLOCK_C):
        c = (c0 + tl.arange(0, BLOCK_C))[None, :, None]
        mask = (c < C) & valid[:, None, :]
        acc += tl.load(src_ptr + pixels[:, None, :] + c * s_c, mask=mask, other=0.0).to(ACC) * weight[:, None, :]
    first = (pid // n_blocks) * BLOCK_B * n_blocks + pid % n_blocks
    tl.store(partial_ptr + first + tl.arange(0, BLOCK_B) * n_blocks, tl.sum(tl.sum(acc, axis=2), axis=1), mask=rows)


@direct
@triton.jit
def augment_kernel(
    src_ptr,  # (B, C, H, W), any strides: x (forward) or the gradient (adjoint)
    params_ptr,  # (B, 10) fp32 contiguous (see PARAMS)
    partial_ptr,  # ACC (B, n_blocks) from augment_sums_kernel, read when COLOR
    out_ptr,  # (B, C, H, W) written, any non-overlapping strides
    B,
    C,
    H,
    W,
    s_b,
    s_c,
    s_h,
    s_w,
    o_b,
    o_c,
    o_h,
    o_w,
    SHIFT_H,
    SHIFT_W,
    CUT_H,
    CUT_W,
    N,  # C * H * W
    n_blocks,
    ADJOINT: tl.constexpr,
    BIAS: tl.constexpr,  # add brightness (the forward; not its linear part)
    COLOR: tl.constexpr,  # the policy has the colour ops
    BLOCK_B: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_S: tl.constexpr,
    ACC: tl.constexpr,
):
    pid, b, rows, i, j, here = _tile(B, H, W, n_blocks, BLOCK_B, BLOCK_P)
    here = rows[:, None] & here
    t_h, t_w, top, left = _geometry(params_ptr, b, rows, H, W, SHIFT_H, SHIFT_W, CUT_H, CUT_W)
    # A cut pixel is multiplied by 0 rather than skipped, so that NaN stays NaN as in the reference's x * mask.
    if ADJOINT:
        # Pixel p gathers the gradient of output pixel p - t, weighed there (kept: outside the cutout).
        si = i - t_h
        sj = j - t_w
        kept = ((si < top) | (si >= top + CUT_H) | (sj < left) | (sj >= left + CUT_W)).to(ACC)
    else:
        si = i + t_h
        sj = j + t_w
        kept = ((i < top) | (i >= top + CUT_H) | (j < left) | (j >= left + CUT_W)).to(ACC)
    read = here & (si >= 0) & (si < H) & (sj >= 0) & (sj < W)  # (BLOCK_B, BLOCK_P)
    scale = tl.full([BLOCK_B, 1], 1.0, ACC)
    mix = tl.zeros([BLOCK_B, 1], ACC)
    offset = tl.zeros([BLOCK_B, 1], ACC)
    src = b[:, None] * s_b + si * s_h + sj * s_w
    if COLOR:
        row = params_ptr + b * 10
        on = tl.load(row + 7, mask=rows, other=0.0) != 0.0
        beta = tl.where(on, tl.load(row + 0, mask=rows, other=0.0) - 0.5, 0.0).to(ACC)[:, None]
        s = tl.where(on, 2.0 * tl.load(row + 1, mask=rows, other=0.0), 1.0).to(ACC)[:, None]
        k = tl.where(on, tl.load(row + 2, mask=rows, other=0.0) + 0.5, 1.0).to(ACC)[:, None]
        total = tl.zeros([BLOCK_B, BLOCK_S], dtype=ACC)
        for s0 in range(0, n_blocks, BLOCK_S):
            blocks = (s0 + tl.arange(0, BLOCK_S))[None, :]
            mask = rows[:, None] & (blocks < n_blocks)
            total += tl.load(partial_ptr + b[:, None] * n_blocks + blocks, mask=mask, other=0.0)
        mu = tl.sum(total, axis=1)[:, None] / N
        scale = k * s
        mix = k - k * s
        offset = (1.0 - k) * mu
        if BIAS:
            offset += beta
        channel_sum = tl.zeros([BLOCK_B, BLOCK_P], dtype=ACC)
        for c0 in range(0, C, BLOCK_C):
            c = (c0 + tl.arange(0, BLOCK_C))[None, :, None]
            v = tl.load(src_ptr + src[:, None, :] + c * s_c, mask=(c < C) & read[:, None, :], other=0.0).to(ACC)
            if ADJOINT:
                v = v * kept[:, None, :]
            channel_sum += tl.sum(v, axis=1)
        shade = mix * channel_sum / C + offset
    else:
        shade = tl.zeros([BLOCK_B, BLOCK_P], dtype=ACC)
    if not ADJOINT:
        shade = tl.where(read, shade, 0.0)  # a filled pixel is 0, its constant terms too
    dst = b[:, None] * o_b + i * o_h + j * o_w
    for c0 in range(0, C, BLOCK_C):
        c = (c0 + tl.arange(0, BLOCK_C))[None, :, None]
        channels = c < C
        v = tl.load(src_ptr + src[:, None, :] + c * s_c, mask=channels & read[:, None, :], other=0.0).to(ACC)
        if ADJOINT:
            out = scale[:, :, None] * (v * kept[:, None, :]) + shade[:, None, :]
        else:
            out = (scale[:, :, None] * v + shade[:, None, :]) * kept[:, None, :]
        out_mask = channels & here[:, None, :]
        tl.store(out_ptr + dst[:, None, :] + c * o_c, out.to(out_ptr.dtype.element_ty), mask=out_mask)


def augment_tiles(batch: int, channels: int, pixels: int) -> tuple[int, int, int]:
    """(BLOCK_B, BLOCK_C, BLOCK_P) for a batch of images: up to 4 channels and as many pixels as fill a tile, and
    several samples a program where an image is smaller than that."""
    block_c = min(next_power_of_2(channels), 4)
    block_p = min(_TILE // block_c, next_power_of_2(pixels))
    return min(_TILE // (block_c * block_p), next_power_of_2(batch)), block_c, block_p


def partial_block(n_blocks: int, block_b: int) -> int:
    """BLOCK_S: how many of a sample's partial sums a program reads at once (a [BLOCK_B, BLOCK_S] tile)."""
    return min(next_power_of_2(n_blocks), max(_TILE // 8 // block_b, 1))


def augment_apply(
    src: torch.Tensor,
    params: torch.Tensor,
    out: torch.Tensor,
    sizes: tuple[int, int, int, int],
    color: bool,
    adjoint: bool,
    bias: bool,
) -> torch.Tensor:
    """Write the augmentation (or, ``adjoint``, its adjoint) of ``src`` into ``out`` and return it.

    ``src``, ``out``: (B, C, H, W) of one float dtype and device, any strides (``out`` not overlapping itself);
    ``params``: (B, 10) fp32 contiguous (:data:`PARAMS`); ``sizes``: the largest shifts (rows, cols) and the
    cutout's (height, width); ``color``: the colour ops are in the policy; ``bias``: add brightness (the forward
    proper, not its linear part). Callers check the arguments (``fastgan.augment`` does).
    """
    batch, channels, height, width = src.shape
    pixels = height * width
    block_b, block_c, block_p = augment_tiles(batch, channels, pixels)
    n_blocks = cdiv(pixels, block_p)
    acc = accumulator_dtype(src.dtype)
    grid = (cdiv(batch, block_b) * n_blocks,)
    shape = (batch, channels, height, width)
    tiles = dict(BLOCK_B=block_b, BLOCK_C=block_c, BLOCK_P=block_p, ACC=tl_dtype(acc), num_warps=_NUM_WARPS)
    partial = src.new_empty(batch * n_blocks if color else 1, dtype=acc)
    if color:
        augment_sums_kernel[grid](
            src, params, partial, *shape, *src.stride(), *sizes, n_blocks, WEIGHTED=adjoint, **tiles
        )
    augment_kernel[grid](
        src,
        params,
        partial,
        out,
        *shape,
        *src.stride(),
        *out.stride(),
        *sizes,
        channels * pixels,
        n_blocks,
        ADJOINT=adjoint,
        BIAS=bias,
        COLOR=color,
        BLOCK_S=partial_block(n_blocks, block_b),
        **tiles,
    )
    return out

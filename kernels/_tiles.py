"""Tile shapes shared by the per-sample kernels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

# Elements per [BLOCK_B, BLOCK_D] tile. One tile serves both shapes GAN training meets: many tiny samples
# (D = 2, B = 10^5 packs 1024 samples a tile) and a few huge ones (D in the millions loops over columns).
# 2048 elements over 8 warps is 8 per thread: compiled for sm_90 the heaviest kernel (interpolation backward,
# five tensors) then needs at most 80 registers and no spills; 4096 needed 156, i.e. one block per SM.
TILE_ELEMENTS = 2048
# Enough programs to fill a large GPU several times over before a program loops over more column blocks.
TARGET_PROGRAMS = 1024
MAX_ITERS = 16


@dataclass(frozen=True)
class RowTiles:
    """How a (B, D) row problem is cut: row blocks x column chunks of ``ITERS`` blocks of ``BLOCK_D``."""

    BLOCK_B: int
    BLOCK_D: int
    ITERS: int
    n_row_blocks: int
    n_chunks: int
    num_warps: int

    @property
    def grid(self) -> tuple[int]:
        # Everything on axis 0: axes 1 and 2 are capped at 65535 on CUDA.
        return (self.n_row_blocks * self.n_chunks,)


def row_tiles(batch: int, width: int) -> RowTiles:
    """Choose the tiling of ``batch`` rows of ``width`` elements (both >= 1)."""
    block_d = min(triton.next_power_of_2(width), TILE_ELEMENTS)
    block_b = max(1, min(triton.next_power_of_2(batch), TILE_ELEMENTS // block_d))
    n_row_blocks = triton.cdiv(batch, block_b)
    col_blocks = triton.cdiv(width, block_d)
    iters = 1
    while iters < MAX_ITERS and n_row_blocks * triton.cdiv(col_blocks, 2 * iters) >= TARGET_PROGRAMS:
        iters *= 2
    n_chunks = triton.cdiv(col_blocks, iters)
    num_warps = 8 if block_b * block_d >= 2048 else 4
    return RowTiles(block_b, block_d, iters, n_row_blocks, n_chunks, num_warps)


def accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 accumulation for fp32 and narrower inputs, fp64 for fp64 (so float64 gradcheck holds)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def tl_dtype(dtype: torch.dtype):
    """The triton dtype matching an accumulator torch dtype."""
    return tl.float64 if dtype == torch.float64 else tl.float32

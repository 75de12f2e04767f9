"""Tile shapes, the program prologue and the launch device shared by the per-sample kernels."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl

from .accumulator import accumulator_dtype

# Elements per [BLOCK_B, BLOCK_D] tile. One tile serves both shapes GAN training meets: many tiny samples
# (D = 2, B = 10^5 packs 1024 samples a tile) and a few huge ones (D in the millions loops over columns).
# 2048 elements over 8 warps is 8 per thread: compiled for sm_90 the heaviest kernel (interpolation backward,
# five tensors) stays well under 128 registers without spills.
TILE_ELEMENTS = 2048
# Enough programs to fill a large GPU several times over before a program loops over more column blocks.
# Read at every launch (a launch plan is kept per value), so the tests can lower it to reach every tiling class on
# small tensors; the drop-in interpolate's remembered launches keep the tiling they were planned with.
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

    def constants(self, dtype: torch.dtype, **flags: Any) -> dict[str, Any]:
        """The row kernels' constexprs for this tiling and inputs of ``dtype`` (``flags``: a kernel's own), with
        ``num_warps``."""
        return dict(
            BLOCK_B=self.BLOCK_B,
            BLOCK_D=self.BLOCK_D,
            ITERS=self.ITERS,
            **flags,
            ACC=tl_dtype(accumulator_dtype(dtype)),
            num_warps=self.num_warps,
        )

    @property
    def grid(self) -> tuple[int]:
        # Everything on axis 0: axes 1 and 2 are capped at 65535 on CUDA.
        return (self.n_row_blocks * self.n_chunks,)


def cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` for ints > 0. Plain Python: in Triton 3.8 ``triton.cdiv`` is a constexpr function whose
    host call is slow (benchmarks/RESULTS.md, "fastgan's Python around its kernel launches")."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The smallest power of 2 >= ``n`` (>= 1), in plain Python like :func:`cdiv`."""
    return 1 << (n - 1).bit_length() if n > 1 else 1


def row_tiles(batch: int, width: int) -> RowTiles:
    """Choose the tiling of ``batch`` rows of ``width`` elements (both >= 1).

    A program covers ``BLOCK_B`` rows and ``ITERS`` column blocks; ``ITERS`` doubles while the grid would still
    hold ``TARGET_PROGRAMS`` programs, and never past the row's column blocks (no fully masked iterations).
    Remembered per shape: every launch asks, and a training run asks about a handful of shapes.
    """
    return _row_tiles(batch, width, TARGET_PROGRAMS)


@functools.lru_cache(maxsize=256)
def _row_tiles(batch: int, width: int, target_programs: int) -> RowTiles:
    block_d = min(next_power_of_2(width), TILE_ELEMENTS)
    block_b = max(1, min(next_power_of_2(batch), TILE_ELEMENTS // block_d))
    n_row_blocks = cdiv(batch, block_b)
    col_blocks = cdiv(width, block_d)
    iters = 1
    while iters < MAX_ITERS and iters < col_blocks and n_row_blocks * cdiv(col_blocks, 2 * iters) >= target_programs:
        iters *= 2
    n_chunks = cdiv(col_blocks, iters)
    num_warps = 8 if block_b * block_d >= 2048 else 4
    return RowTiles(block_b, block_d, iters, n_row_blocks, n_chunks, num_warps)


@triton.jit
def row_chunk(n_chunks, B, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr, ITERS: tl.constexpr):
    """This program's row block ``rb``, column chunk, int64 row indices and mask, and first column."""
    pid = tl.program_id(0)
    rb = pid // n_chunks
    chunk = pid - rb * n_chunks
    # int64 before multiplying by sizes: offsets past 2^31 elements stay exact.
    rows = rb.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    col0 = chunk.to(tl.int64) * (BLOCK_D * ITERS)
    return rb, chunk, rows, rows < B, col0


def tl_dtype(dtype: torch.dtype) -> Any:
    """The triton dtype matching an accumulator torch dtype."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def on_device(t: torch.Tensor | None) -> contextlib.AbstractContextManager[object]:
    """Context that makes ``t``'s CUDA device current, as Triton launches on the current device (none for a
    CPU tensor or None)."""
    return torch.cuda.device(t.device) if t is not None and t.is_cuda else contextlib.nullcontext()

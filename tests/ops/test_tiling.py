"""The test shapes reach every tiling class of the row kernels, so a fault in any one of them is caught."""

import math

import pytest
from helpers import SHAPES, SMALL_GRID

from fastgan.kernels import _tiles


def _classes(monkeypatch):
    monkeypatch.setattr(_tiles, "TARGET_PROGRAMS", SMALL_GRID)
    found = set()
    for shape, _ in SHAPES:
        batch, width = shape[0], math.prod(shape[1:])
        t = _tiles.row_tiles(batch, width)
        found.add("several rows a program" if t.BLOCK_B > 1 else "one row a program")
        if batch % t.BLOCK_B:
            found.add("partial last row block")
        if t.n_chunks == 1:
            found.add("single chunk, several iterations" if t.ITERS > 1 else "single chunk, one iteration")
        else:
            found.add("several chunks, several iterations" if t.ITERS > 1 else "several chunks, one iteration")
            if math.ceil(width / t.BLOCK_D) % t.ITERS:
                found.add("partial last chunk")
        if batch > 65535:
            found.add("more than 65535 samples")
        if width > 65536:
            found.add("samples above 65536 elements")
    return found


def test_shapes_reach_every_tiling_class(monkeypatch):
    assert _classes(monkeypatch) == {
        "several rows a program",
        "one row a program",
        "partial last row block",
        "single chunk, one iteration",
        "single chunk, several iterations",
        "several chunks, one iteration",
        "several chunks, several iterations",
        "partial last chunk",
        "more than 65535 samples",
        "samples above 65536 elements",
    }


@pytest.mark.parametrize("batch,width", [(1, 1), (7, 3), (100000, 2), (4, 3 << 20), (256, 49152), (3, 4113)])
def test_tiles_cover_each_element_once(batch, width):
    t = _tiles.row_tiles(batch, width)
    assert t.n_row_blocks * t.BLOCK_B >= batch > (t.n_row_blocks - 1) * t.BLOCK_B
    assert t.n_chunks * t.ITERS * t.BLOCK_D >= width > (t.n_chunks * t.ITERS - t.ITERS) * t.BLOCK_D
    assert t.ITERS <= math.ceil(width / t.BLOCK_D) or t.ITERS == 1  # no iteration entirely masked
    assert t.BLOCK_B * t.BLOCK_D <= _tiles.TILE_ELEMENTS and t.grid[0] < 2**31

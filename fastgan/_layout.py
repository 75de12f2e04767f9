"""Row layouts for the per-sample kernels.

A kernel sees a (B, ...) tensor as B rows of D = numel / B elements: row i starts at ``ptr + i * stride(0)``
and its D elements are dense. Contiguous and channels_last tensors are already like that (the batch stride is
outermost), and so are batch-sliced views such as ``x[::2]``; those are used as they are. Two tensors combined
elementwise must also order the elements of a sample the same way. Anything else is copied once into the
reference tensor's layout: the only copy the kernels' wrappers make.
"""

from __future__ import annotations

import torch


def _sample_strides(x: torch.Tensor) -> tuple[int, ...]:
    # Size-1 dimensions never move the address, so their strides do not matter.
    return tuple(st if sz != 1 else 0 for sz, st in zip(x.shape[1:], x.stride()[1:]))


def _dense(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    dims = sorted((st, sz) for sz, st in zip(shape, strides) if sz != 1)
    expected = 1
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def is_dense(x: torch.Tensor) -> bool:
    """Whether ``x`` covers one dense run of memory (in any dimension order), without gaps or overlaps."""
    return _dense(tuple(x.shape), x.stride())


def sample_is_dense(x: torch.Tensor) -> bool:
    """Whether each sample ``x[i]`` covers a dense run of memory (in any dimension order)."""
    return _dense(tuple(x.shape[1:]), x.stride()[1:])


def dense_strides(x: torch.Tensor) -> tuple[int, ...]:
    """Strides of a fresh (B, ...) tensor whose samples are laid out like ``x``'s (row-major if not dense)."""
    if not sample_is_dense(x):
        return torch.empty(x.shape, device="meta").stride()
    return (x[0].numel(),) + tuple(x.stride()[1:])


def empty_rows_like(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialised tensor of ``x``'s shape with ``x``'s sample layout, rows packed back to back."""
    return torch.empty_strided(x.shape, dense_strides(x), dtype=dtype or x.dtype, device=x.device)


def rows_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``x`` itself when its samples are dense and ordered like ``ref``'s, else a copy laid out like ``ref``."""
    if sample_is_dense(x) and _sample_strides(x) == _sample_strides(ref):
        return x
    out = empty_rows_like(ref, dtype=x.dtype)
    out.copy_(x)
    return out

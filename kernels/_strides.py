"""Memory-layout predicates shared by the launchers' precondition checks and ``fastgan``'s layout helpers.

Plain PyTorch (no triton import), so ``fastgan`` can use them without loading triton. Every launch asks them of
its tensors, so a contiguous tensor (the usual case) is answered by one C call.
"""

from __future__ import annotations

import torch


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
    return x.is_contiguous() or _dense(tuple(x.shape), x.stride())


def sample_is_dense(x: torch.Tensor) -> bool:
    """Whether each sample ``x[i]`` covers a dense run of memory (in any dimension order)."""
    return x.is_contiguous() or _dense(tuple(x.shape[1:]), x.stride()[1:])


def sample_strides(x: torch.Tensor) -> tuple[int, ...]:
    """The strides inside a sample; size-1 dimensions never move the address, so theirs read as 0."""
    return tuple(st if sz != 1 else 0 for sz, st in zip(x.shape[1:], x.stride()[1:]))


def same_sample_order(x: torch.Tensor, ref: torch.Tensor) -> bool:
    """Whether ``x`` and ``ref``, of the same shape, order a sample's elements alike."""
    return x.stride()[1:] == ref.stride()[1:] or sample_strides(x) == sample_strides(ref)

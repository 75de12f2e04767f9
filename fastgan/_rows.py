"""Row layouts for the per-sample kernels.

A kernel sees a (B, ...) tensor as B rows of D = numel / B elements: row i starts at ``ptr + i * stride(0)``
and its D elements are dense. Contiguous and channels_last tensors are already like that (the batch stride is
outermost), and so are batch-sliced views such as ``x[::2]``; those are used as they are. Two tensors combined
elementwise must also order the elements of a sample the same way. Anything else is copied once into the
reference tensor's layout: the only copy the kernels' wrappers make.
"""

from __future__ import annotations

import torch

from .kernels._strides import is_dense, same_sample_order, sample_is_dense

__all__ = ["dense_strides", "empty_rows_like", "is_dense", "rows_like", "sample_is_dense"]


def dense_strides(x: torch.Tensor) -> tuple[int, ...]:
    """Strides of a fresh (B, ...) tensor whose samples are laid out like ``x``'s (row-major if not dense)."""
    if x.is_contiguous():
        return x.stride()
    if not sample_is_dense(x):
        return torch.empty(x.shape, device="meta").stride()
    return (x.numel() // x.shape[0] if x.shape[0] else 0,) + tuple(x.stride()[1:])


def empty_rows_like(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialised tensor of ``x``'s shape with ``x``'s sample layout, rows packed back to back."""
    if x.is_contiguous():
        return torch.empty_like(x, dtype=dtype)  # the common case, and the cheapest call
    return torch.empty_strided(x.shape, dense_strides(x), dtype=dtype or x.dtype, device=x.device)


def rows_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``x`` itself when its samples are dense and ordered like ``ref``'s, else a copy laid out like ``ref``."""
    if sample_is_dense(x) and (x is ref or same_sample_order(x, ref)):
        return x
    out = empty_rows_like(ref, dtype=x.dtype)
    out.copy_(x)
    return out

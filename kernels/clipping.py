"""Multi-tensor in-place clamp to [-c, c]: one launch for any number of same-dtype tensors on one device.

Each tensor is cut into chunks of at most CHUNK elements; a table holds, per chunk, its start address (int64)
and length, and each program clamps one chunk through a pointer cast from that address (the pattern of
PyTorch's MultiTensorApply, with Triton's grouped-GEMM pointer tables). The table depends only on the
tensors' addresses, sizes and dtype, so it is built once and cached.
NaN stays NaN (comparisons with NaN are false), as with ``torch.clamp``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import triton
import triton.language as tl

from . import _preconditions
from .launch import direct

BLOCK = 1024
ITERS = 8
CHUNK = BLOCK * ITERS
_TABLE_CACHE_SIZE = 32
_tables: OrderedDict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()


@direct
@triton.jit(do_not_specialize=["clip_value"])
def clipping_kernel(
    addr_ptr,  # int64 (n_chunks,): start address of each chunk
    len_ptr,  # int32 (n_chunks,): elements in each chunk (<= BLOCK * ITERS)
    like_ptr,  # any tensor of the group: gives the element type the addresses point to
    clip_value,
    BLOCK: tl.constexpr,
    ITERS: tl.constexpr,
):
    pid = tl.program_id(0)
    data = tl.load(addr_ptr + pid).to(tl.pointer_type(like_ptr.dtype.element_ty))
    n = tl.load(len_ptr + pid)
    for it in range(ITERS):
        offs = it * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(data + offs, mask=mask)
        # clip_value is already rounded to x's dtype, so the clamped value converts back exactly.
        xf = x.to(tl.float32)
        xf = tl.where(xf < -clip_value, -clip_value, tl.where(xf > clip_value, clip_value, xf))
        tl.store(data + offs, xf.to(x.dtype), mask=mask)


def chunk_table(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipping kernel's work list for ``tensors`` (one device and dtype): int64 start addresses and int32
    lengths, one per chunk of at most ``CHUNK`` elements, in order. Remembered per (device, dtype, addresses and
    sizes), for the last ``_TABLE_CACHE_SIZE`` lists: a critic's parameters keep their storage."""
    key = (tensors[0].device, tensors[0].dtype, *[(t.data_ptr(), t.numel()) for t in tensors])
    table = _tables.get(key)
    if table is not None:
        _tables.move_to_end(key)
        return table
    addrs, lens = [], []
    for t in tensors:
        size = t.element_size()
        for start in range(0, t.numel(), CHUNK):
            addrs.append(t.data_ptr() + start * size)
            lens.append(min(CHUNK, t.numel() - start))
    device = tensors[0].device
    table = (
        torch.tensor(addrs, dtype=torch.int64, device=device),
        torch.tensor(lens, dtype=torch.int32, device=device),
    )
    _tables[key] = table
    if len(_tables) > _TABLE_CACHE_SIZE:
        _tables.popitem(last=False)
    return table


def clip_(tensors: list[torch.Tensor], clip_value: float, *, check: bool = True) -> None:
    """Clamp every tensor of ``tensors`` in place to [-clip_value, clip_value] in one launch.

    All tensors share one device and one dtype (fp32, fp16 or bf16), are dense in memory (any dimension order)
    and non-empty; ``clip_value`` > 0. Autograd's version counters are not bumped here. ``check=False`` skips the
    preconditions, for callers that established them (``fastgan``'s ops do).
    """
    if check:
        _preconditions.clipping(tensors, clip_value)
    addrs, lens = chunk_table(tensors)
    clipping_kernel.planned((addrs.numel(), clip_value, tensors[0].dtype), (addrs, lens, tensors[0]), _plan)


def _plan(n_chunks: int, clip_value: float, dtype: torch.dtype):
    # The bound rounded to the tensors' dtype: comparing against it gives torch.clamp's result exactly.
    bound = float(torch.tensor(clip_value, dtype=dtype))
    return (n_chunks,), (bound,), dict(BLOCK=BLOCK, ITERS=ITERS)

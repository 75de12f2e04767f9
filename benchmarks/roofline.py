"""FLOPs and memory traffic of a step, and the device's ceilings: the measured bf16 dense matmul rate and copy
bandwidth.

A step's FLOPs are counted with the formulas of ``torch.utils.flop_counter`` (matrix products and convolutions,
forward and backward, double backward included): its ``FlopCounterMode`` tracks modules with hooks that
``autograd.grad`` on a leaf refuses, so the formulas are applied here by a bare dispatch mode. Its traffic is
what eager PyTorch moves: the bytes of every operator's tensor inputs and outputs (fusion moves less), so
FLOPs over traffic is the step's arithmetic intensity as written, the x axis of the roofline.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


def _tensor_bytes(tree) -> int:
    return sum(t.numel() * t.element_size() for t in pytree.tree_leaves(tree) if isinstance(t, torch.Tensor))


class _Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.flops = self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        self.bytes += _tensor_bytes((args, kwargs)) + _tensor_bytes(out)
        return out


def count_work(fn: Callable[[], object]) -> tuple[int, int]:
    """(FLOPs, bytes of eager traffic) of one eager call of ``fn`` (run once, on whatever device its tensors are
    on)."""
    with _Count() as counter:
        fn()
    return int(counter.flops), int(counter.bytes)


def matmul_tflops(device: torch.device, dtype: torch.dtype = torch.bfloat16, n: int | None = None) -> float:
    """Measured dense matmul rate of ``device`` in TFLOP/s: square products of side ``n`` (8192 on CUDA, 1024 on
    a CPU), the ceiling the steps' FLOP rates are compared with."""
    from .timing import median_ms

    n = n or (8192 if device.type == "cuda" else 1024)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    ms, _ = median_ms(lambda: a @ b, device)
    return 2 * n**3 / (ms * 1e-3) / 1e12

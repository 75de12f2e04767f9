"""Every benchmark case, in the order the runner reports them: the ops' cases (benchmarks/cases.py) and the
whole steps' (benchmarks/step_cases.py), which build on the ops' critics."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .cases import (
    Case,
    clipping_cases,
    gp_step_cases,
    interpolation_cases,
    iteration_cases,
    losses_cases,
    penalty_cases,
)
from .step_cases import step_cases


def all_cases(device: torch.device, quick: bool, compile_: bool) -> Iterator[Case]:
    """Every case; ``quick`` keeps the reference sizes and one mid size in fp32 and bf16 (for a CPU)."""
    dtypes = [torch.float32, torch.bfloat16] if quick else [torch.float32, torch.float16, torch.bfloat16]
    elementwise = [(64, 784), (64, 3, 64, 64)]
    penalty_shapes = [(64, 784), (100000, 2), (64, 3, 64, 64)]
    if not quick:
        elementwise += [(256, 3, 128, 128), (256, 3, 256, 256)]
        penalty_shapes += [(256, 3, 128, 128), (256, 3, 256, 256), (4, 3, 1024, 1024)]
    yield from interpolation_cases(device, elementwise, dtypes, compile_)
    yield from penalty_cases(device, penalty_shapes, dtypes, compile_)
    yield from gp_step_cases(device, compile_)
    yield from step_cases(device, compile_)
    yield from iteration_cases(device)
    yield from clipping_cases(device, dtypes, compile_, large=not quick)
    yield from losses_cases(device, [64, 4096] if quick else [64, 4096, 1 << 22], compile_)

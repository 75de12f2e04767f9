"""The precision a step runs its networks in: ``"fp32"``, or ``"bf16"`` (autocast of the critic's and generator's
forward, and so of their backward; parameters, optimizer state, input-gradient norms and losses stay fp32)."""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: object) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def networks(precision: str, device_type: str) -> contextlib.AbstractContextManager[object]:
    """The context to call a network in: bf16 autocast for ``"bf16"``; for ``"fp32"`` none at all, so that a
    caller's own autocast still applies."""
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def weights_cast_once(precision: str, device_type: str) -> contextlib.AbstractContextManager[object]:
    """The context to evaluate a whole objective in: under ``"bf16"`` every network call inside it reuses one bf16
    copy of each weight instead of casting its own (autocast keeps its casts while an outer autocast region is
    open and drops them when the outermost one closes, before the optimizer changes the weights), which also
    leaves one cast, not one per call, in the graph the backward runs through. The region itself autocasts
    nothing: only :func:`networks` does."""
    if precision == "bf16":
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()

"""The accumulator rule of every fused op and of its eager path: plain PyTorch (no triton import), so ``fastgan``'s
ops can follow it without importing triton."""

from __future__ import annotations

import torch


def accumulator_dtype(*dtypes: torch.dtype | None) -> torch.dtype:
    """fp32 accumulation for fp32 and narrower inputs, fp64 where any input is fp64 (so float64 gradcheck
    holds); None stands for an absent input."""
    return torch.float64 if torch.float64 in dtypes else torch.float32

"""The types the steps pass between their parts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Stats = dict[str, torch.Tensor]  # a step's detached 0-dim statistics by name
Inputs = tuple[Any, ...]  # a step's arguments: tensors, or None for an absent one (labels)
Key = tuple[Any, ...]  # what compiled and captured code is specialised on (runner.shape_key)
Snapshot = list[tuple[torch.Tensor, torch.Tensor]]  # buffers and copies of their values (state.restore)
Tensors = dict[str, torch.Tensor]  # a module's tensors by name
Fn = Callable[..., Any]  # a compiled or traced function
RngState = tuple[torch.Tensor, torch.Tensor | None]  # the CPU's default generator state, and the device's

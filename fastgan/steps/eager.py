"""Eager mode: the objective's eager form (fastgan's fused ops and autograd), backward into the trained
parameters, the gradients' mean over a process group's ranks, the optimizer's step and what follows an update.
The other modes fall back to it, and check or warm up with it."""

from __future__ import annotations

import torch

from .. import distributed
from .objectives import Objective
from .types import Inputs, Key, RngState, Snapshot, Stats


class Eager:
    """The eager step of ``objective``, updating its trained parameters with ``optimizer``; with a process group
    (``group``), every rank's gradients become their mean over the ranks before the update."""

    mode = "eager"

    def __init__(
        self, objective: Objective, optimizer: torch.optim.Optimizer, group: torch.distributed.ProcessGroup | None
    ):
        self.objective, self.optimizer, self.group = objective, optimizer, group

    def first(self, key: Key, inputs: Inputs, before: Snapshot, rng: RngState) -> Stats:
        """The first call for a new input shape: an eager step like any other."""
        return self.step(key, inputs)

    def step(self, key: Key, inputs: Inputs) -> Stats:
        """One update from ``inputs`` (the objective's eager arguments); ``key``: their shapes (unused)."""
        return self.run(inputs)

    def run(self, inputs: Inputs) -> Stats:
        """One update from ``inputs``."""
        total, stats = self.objective.eager(*inputs)
        self.backward(total)
        self.synchronise()
        self.objective.optimizer_step(self.optimizer)
        self.objective.after_update()
        return stats

    def backward(self, total: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        # Only into the trained parameters: a frozen one, or another module's, gets no gradient.
        params = self.objective.state.params
        if params:
            self.objective.scaled(total).backward(inputs=params)  # type: ignore[no-untyped-call]  # torch 2.14's stub

    def gradients(self, inputs: Inputs) -> list[torch.Tensor | None]:
        """The eager step's gradients of the trained parameters (copies; None where the objective does not reach
        a parameter), without the update."""
        total, _ = self.objective.eager(*inputs)
        self.backward(total)
        return [None if p.grad is None else p.grad.clone() for p in self.objective.state.params]

    def synchronise(self) -> None:
        """With a process group, every rank's gradients become their mean over the ranks."""
        if self.group is not None:
            distributed.all_reduce_gradients(self.objective.state.params, self.group)

    def forget(self, builds: bool) -> None:
        """Nothing built for the modules' old tensors to drop."""

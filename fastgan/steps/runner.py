"""One objective, one optimizer update per call, in one mode: the runner resolves the mode at the first call and
holds that mode's strategy (:class:`~fastgan.steps.eager.Eager`, :class:`~fastgan.steps.graph.Graph`,
:class:`~fastgan.steps.compiled.step.Compiled`, :class:`~fastgan.steps.compiled.captured.CompiledGraph`); a
fallback swaps the strategy.

Every mode leaves the modules as the eager step would: each call updates every buffer once (on compile mode's
checked first call for a shape the eager gradients run on a copy of the buffers' state, which is put back);
a module whose tensors or flags changed between calls is looked up again and what was compiled or captured
for the old ones is dropped, and so is an update built for the optimizer's parameter groups when they change;
a module whose forward reassigns a buffer or changes a Python attribute (which compiled code and graph replays
cannot repeat) runs eager, with a warning naming it; a call refused for bad input (``ValueError``/``TypeError``)
leaves buffers and random generators as they were, and an error raised by the user's module is raised as the
eager step raises it, leaving the mode as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from .._frames import warn_user
from .compiled.captured import CompiledGraph
from .compiled.step import Compiled
from .eager import Eager
from .graph import Graph
from .modes import GRAPH_MODES, auto_mode
from .objectives import Objective
from .state import Mark, ModuleState, restore, rng_state, set_rng_state
from .types import Inputs, Key, RngState, Snapshot, Stats


class Strategy(Protocol):
    """How one mode runs a step: the first call for an input shape (``before``: the buffers' snapshot, ``rng``:
    the generators' state, to put back for a second try) and the later ones; ``forget`` drops what was built or
    captured for the modules' old tensors (``builds``: more than buffers changed)."""

    mode: str

    def first(self, key: Key, inputs: Inputs, before: Snapshot, rng: RngState) -> Stats: ...

    def step(self, key: Key, inputs: Inputs) -> Stats: ...

    def forget(self, builds: bool) -> None: ...


def optimizer_layout(optimizer: torch.optim.Optimizer) -> tuple[tuple[int, ...], ...]:
    """Which parameters each of ``optimizer``'s groups holds, by identity."""
    return tuple(tuple(map(id, g["params"])) for g in optimizer.param_groups)


def shape_key(inputs: Inputs) -> Key:
    """What a compiled or captured step is specialised on: each input's shape, dtype and strides."""
    return tuple(None if t is None else (tuple(t.shape), t.dtype, t.stride()) for t in inputs)


class Runner:
    """Runs ``objective`` (see :mod:`fastgan.steps.objectives`) as optimizer updates of ``objective.state``'s
    trained parameters, in ``mode``; ``name`` (the public step's class) heads its warnings."""

    def __init__(
        self,
        name: str,
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        mode: str,
        group: torch.distributed.ProcessGroup | None = None,
    ):
        self.name, self.objective, self.optimizer, self.group = name, objective, optimizer, group
        self.states: list[ModuleState] = [s for s in (objective.state, objective.aux) if s is not None]
        self.requested_mode = mode
        self.eager = Eager(objective, optimizer, group)
        self.strategy: Strategy | None = None  # chosen at the first call, from the inputs' device
        self._seen: set[Key] = set()  # input shapes called with (checked, in compile mode)
        self._versions = tuple(s.version for s in self.states)  # the look-ups of the modules built for
        self._outlines = tuple(s.outline for s in self.states)
        self._layout = optimizer_layout(optimizer)  # the parameter groups built for

    @property
    def state(self) -> ModuleState:
        return self.objective.state

    @property
    def mode(self) -> str | None:
        """The mode in use: None before the first call."""
        return None if self.strategy is None else self.strategy.mode

    @mode.setter
    def mode(self, mode: str) -> None:
        """Run in ``mode`` (resolved: not ``auto``) from the next call."""
        strategies: dict[str, Callable[[Runner], Strategy]] = {
            "eager": lambda runner: runner.eager,
            "graph": Graph,
            "compile": Compiled,
            "compile+graph": CompiledGraph,
        }
        self.strategy = strategies[mode](self)

    def resolve_mode(self, device: torch.device) -> str:
        """``requested_mode`` resolved for inputs on ``device``, as the first call does (warning where it cannot
        compile; for the graph modes making the optimizer capturable, or raising why it cannot capture)."""
        mode = self.requested_mode
        if mode in GRAPH_MODES and device.type != "cuda":
            raise ValueError(f"mode={mode!r} captures CUDA graphs: it needs CUDA tensors, got {device.type} tensors")
        if mode == "auto":
            mode = auto_mode(device, self.group, self.state.module)
            if mode == "graph" and self.graph_impossible():
                mode = "compile"  # e.g. an optimizer without a capturable option, or an fp16 GradScaler
        if mode in ("compile", "compile+graph"):
            why = self.objective.compile_impossible()
            if why:
                instead = "eager" if mode == "compile" else "graph"
                warn_user(f"{self.name}: cannot compile ({why}); running {instead}")
                mode = instead
        if mode in GRAPH_MODES:
            why = self.graph_impossible()
            if why is None and self.group is not None:
                why = "a process group is not supported yet (the gradient all-reduce is not captured)"
            if why:
                raise ValueError(f"mode={mode!r} cannot capture this step: {why}")
            for group in self.optimizer.param_groups:
                group["capturable"] = True
        return mode

    def graph_impossible(self) -> str | None:
        """Why this step cannot be captured as a CUDA graph, or None."""
        why = self.objective.graph_impossible()
        if why:
            return why
        if "capturable" not in self.optimizer.defaults:
            return f"{type(self.optimizer).__name__} has no capturable option"
        if not all(g.get("capturable") for g in self.optimizer.param_groups) and self.optimizer.state:
            return "the optimizer already holds state without capturable=True; create it with capturable=True"
        return None

    def fall_back(self, why: str) -> None:
        """Warn ``why`` and run eager from now on."""
        warn_user(f"{self.name}: {why}; running eager from now on")
        self.strategy = self.eager

    def mark(self) -> Mark:
        """What the modules hold now, to see and undo what a forward changes."""
        return Mark(self.states)

    def modules(self) -> str:
        """The step's modules in messages: "critic (MyCritic)", "generator (G) and critic (D)"."""
        return " and ".join(f"{s.role} ({type(s.module).__name__})" for s in self.states)

    def snapshot(self) -> Snapshot:
        """Copies of every module's buffers (see :func:`fastgan.steps.state.restore`)."""
        return [entry for s in self.states for entry in s.snapshot()]

    def buffer_names(self) -> list[str]:
        return [f"{s.role}.{n}" for s in self.states for n, _ in s.buffers]

    def __call__(self, inputs: Inputs) -> Stats:
        """One update from ``inputs`` (tensors or None: the objective's ``eager`` arguments)."""
        self._follow_modules()
        self._follow_optimizer()
        if self.strategy is None:
            self.mode = self.resolve_mode(inputs[0].device)
        assert self.strategy is not None
        key = shape_key(inputs)
        if key in self._seen:
            return self.strategy.step(key, inputs)
        # A new shape: refused input leaves the buffers and generators as they were.
        device = inputs[0].device
        before, rng = self.snapshot(), rng_state(device)
        try:
            stats = self.strategy.first(key, inputs, before, rng)
        except (ValueError, TypeError):
            restore(before)
            set_rng_state(device, rng)
            raise
        self._seen.add(key)
        return stats

    def _follow_modules(self) -> None:
        """Look the modules' tensors up again if any changed, dropping what was built for the old ones."""
        for s in self.states:
            s.follow()
        versions = tuple(s.version for s in self.states)
        if versions == self._versions:
            return
        outlines = tuple(s.outline for s in self.states)
        builds = outlines != self._outlines  # not only buffers replaced: check and build anew
        if builds:
            self._seen.clear()
        if self.strategy is not None:
            self.strategy.forget(builds)
        self._versions, self._outlines = versions, outlines

    def _follow_optimizer(self) -> None:
        """Follow parameters moved between groups, groups added or removed: the trained module is looked up again
        (refusing, by name, a trained parameter the optimizer no longer holds) and what was built or captured
        for the old groups is dropped."""
        layout = optimizer_layout(self.optimizer)
        if layout == self._layout:
            return
        self.state.refresh()
        self._layout = layout
        if self.strategy is not None:
            self.strategy.forget(True)
        if self.mode in GRAPH_MODES and any(g.get("capturable") for g in self.optimizer.param_groups):
            for group in self.optimizer.param_groups:  # an added group, capturable as the others
                group["capturable"] = True
        self._follow_modules()

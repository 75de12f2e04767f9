"""Graph mode: the eager step captured as one CUDA graph per input shape after a warm-up step, and replayed;
:class:`Graphs` also serves compile+graph mode (:mod:`fastgan.steps.compiled.captured`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from .types import Inputs, Key, RngState, Snapshot, Stats

if TYPE_CHECKING:
    from .runner import Runner
    from .state import Mark

T = TypeVar("T")
MAX_GRAPHS = 8  # captured input shapes kept per step


class CaptureError(RuntimeError):
    """A capture that failed after its warm-up ran: ``warmed`` is the warm-up's result."""

    def __init__(self, cause: BaseException, warmed: Any):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.warmed = warmed


class StateChangedInForward(CaptureError):
    """The warm-up's forward changed what a replay would not change again (``str``: what); nothing captured."""

    def __init__(self, what: str, warmed: Any):
        RuntimeError.__init__(self, what)
        self.warmed = warmed


def on_side_stream(fn: Callable[[], T]) -> T:
    """``fn()`` on a side stream (a capture's warm-up), the current stream then waiting for it."""
    side = torch.cuda.Stream()  # type: ignore[no-untyped-call]  # torch 2.14 leaves Stream.__new__ unannotated
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = fn()
    torch.cuda.current_stream().wait_stream(side)
    return out


def capture(body: Callable[[], T], warmed: Any) -> tuple[torch.cuda.CUDAGraph, T]:
    """``body()`` captured as one CUDA graph (not run), and the captured call's outputs (refreshed by every
    replay); a failed capture raises :class:`CaptureError` carrying ``warmed``, the warm-up's result."""
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            captured = body()
    except Exception as exc:
        raise CaptureError(exc, warmed) from exc
    return graph, captured


def warm_then_capture(warm_up: Callable[[], Any], body: Callable[[], T]) -> tuple[Any, torch.cuda.CUDAGraph, T]:
    """``warm_up()`` on a side stream, then ``body()`` captured: the warm-up's result, the graph and the captured
    call's outputs."""
    warmed = on_side_stream(warm_up)
    return (warmed, *capture(body, warmed))


class Graphs:
    """The captured steps of one step object by input shape (at most ``MAX_GRAPHS``, the oldest dropped).

    ``step(inputs)`` runs one eager step; a new shape's first call is a real step (the warm-up: kernels
    compiled, optimizer state allocated), which the graph then holds with static copies of the inputs, unless
    the warm-up changed a module's slots or attributes (:class:`fastgan.steps.state.Mark` from ``mark()``):
    then :class:`StateChangedInForward`."""

    def __init__(self, step: Callable[[Inputs], Stats], mark: Callable[[], Mark]):
        self.step, self.mark = step, mark
        self._graphs: dict[Key, tuple[Any, Inputs, Stats]] = {}

    def __contains__(self, key: Key) -> bool:
        return key in self._graphs

    def clear(self) -> None:
        """Forget every capture (the module's tensors changed: a graph holds their addresses)."""
        self._graphs.clear()

    def __call__(self, key: Key, inputs: Inputs) -> dict[str, torch.Tensor]:
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= MAX_GRAPHS:
                self._graphs.pop(next(iter(self._graphs)))
            static = tuple(None if t is None else t.clone() for t in inputs)
            mark = self.mark()
            stats = on_side_stream(lambda: self.step(inputs))
            what = mark.changed()
            if what:
                raise StateChangedInForward(what, stats)
            graph, static_stats = capture(lambda: self.step(static), stats)
            self._graphs[key] = (graph, static, static_stats)
            return stats
        graph, static, static_stats = entry
        for s, t in zip(static, inputs):
            if s is not None:
                s.copy_(t)
        graph.replay()
        return {k: v.clone() for k, v in static_stats.items()}


def eager_from_now(runner: Runner, exc: StateChangedInForward) -> Stats:
    """A graph mode's warm-up found its forward changing what a replay cannot repeat: the warm-up was a whole
    step, whose statistics are returned, and ``runner`` runs eager from the next call, saying why."""
    runner.fall_back(f"{exc}, which a graph's replay cannot repeat")
    stats: Stats = exc.warmed
    return stats


class Graph:
    """Graph mode's strategy: each input shape's first call is an eager step run as a capture's warm-up, later
    calls replay its graph. A forward that changes what a replay would not change again makes the runner
    eager, saying what; an error in the warm-up or the capture is raised as it is."""

    mode = "graph"

    def __init__(self, runner: Runner):
        self.runner = runner
        self.graphs = Graphs(runner.eager.run, runner.mark)

    def first(self, key: Key, inputs: Inputs, before: Snapshot, rng: RngState) -> dict[str, torch.Tensor]:
        return self.step(key, inputs)

    def step(self, key: Key, inputs: Inputs) -> dict[str, torch.Tensor]:
        try:
            return self.graphs(key, inputs)
        except StateChangedInForward as exc:
            return eager_from_now(self.runner, exc)

    def forget(self, builds: bool) -> None:
        self.graphs.clear()  # a graph holds the old tensors' addresses

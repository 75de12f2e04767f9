"""How graph mode replays a step: one CUDA graph per input shape, captured after a warm-up step."""

from __future__ import annotations

from collections.abc import Callable

import torch

MAX_GRAPHS = 8  # captured input shapes kept per step


class CaptureError(RuntimeError):
    """A capture that failed after its warm-up ran: ``warmed`` is the warm-up's result."""

    def __init__(self, cause: BaseException, warmed: object):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.warmed = warmed


def warm_then_capture(warm_up: Callable[[], object], body: Callable[[], object]):
    """``warm_up()`` on a side stream, then ``body()`` captured as one CUDA graph (not run): returns the
    warm-up's result, the graph and the captured call's outputs (refreshed by every replay). A failed capture
    raises :class:`CaptureError`."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        warmed = warm_up()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            captured = body()
    except Exception as exc:  # noqa: BLE001 - the caller decides; the warm-up's step has happened
        raise CaptureError(exc, warmed) from exc
    return warmed, graph, captured


class Graphs:
    """The captured steps of one step object by input shape (at most ``MAX_GRAPHS``, the oldest dropped).

    ``step(inputs)`` runs one eager step; a new shape's first call is a real step (the warm-up: kernels
    compiled, optimizer state allocated), which the graph then holds with static copies of the inputs."""

    def __init__(self, step: Callable[[tuple], dict]):
        self.step = step
        self._graphs: dict[tuple, tuple] = {}

    def clear(self) -> None:
        """Forget every capture (the module's tensors changed: a graph holds their addresses)."""
        self._graphs.clear()

    def __call__(self, key: tuple, inputs: tuple) -> dict[str, torch.Tensor]:
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= MAX_GRAPHS:
                self._graphs.pop(next(iter(self._graphs)))
            static = tuple(None if t is None else t.clone() for t in inputs)
            stats, graph, static_stats = warm_then_capture(lambda: self.step(inputs), lambda: self.step(static))
            self._graphs[key] = (graph, static, static_stats)
            return stats
        graph, static, static_stats = entry
        for s, t in zip(static, inputs):
            if s is not None:
                s.copy_(t)
        graph.replay()
        return {k: v.clone() for k, v in static_stats.items()}

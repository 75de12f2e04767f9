"""compile+graph mode: compile mode's step with the optimizer's update in its graph, captured as one CUDA graph per
input shape and replayed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._frames import warn_user
from ..graph import CaptureError, Graphs, StateChangedInForward, eager_from_now
from ..state import rng_state
from ..types import Inputs, Key, RngState, Snapshot, Stats
from .step import Compiled

if TYPE_CHECKING:
    from ..runner import Runner


class CompiledGraph:
    """compile+graph mode's strategy: compile mode (:class:`.step.Compiled`) until its step with the optimizer's
    update in the graph is built (the first call for a shape is checked, the second builds the update), then
    that step captured (after a warm-up call) and replayed. A capture that fails leaves the runner in compile
    mode; a forward that changes what a replay cannot repeat, eager."""

    mode = "compile+graph"

    def __init__(self, runner: Runner):
        self.runner = runner
        self.compiled = Compiled(runner)
        self.graphs = Graphs(self._body, runner.mark)

    def first(self, key: Key, inputs: Inputs, before: Snapshot, rng: RngState) -> Stats:
        return self.compiled.first(key, inputs, before, rng)

    def step(self, key: Key, inputs: Inputs) -> Stats:
        if not self.compiled.has_update():
            return self.compiled.step(key, inputs)
        if key in self.graphs:
            return self.graphs(key, inputs)
        rng = rng_state(inputs[0].device)
        try:
            return self.graphs(key, inputs)
        except StateChangedInForward as exc:
            return eager_from_now(self.runner, exc)
        except CaptureError as exc:
            warn_user(f"{self.runner.name}: the compiled step does not capture ({exc}); compile mode from now on")
            self.runner.strategy = self.compiled
            warmed: Stats = exc.warmed
            return warmed
        except Exception as exc:  # noqa: BLE001 - the compiled warm-up failed: compile mode's rule
            return self.compiled.eager_after(exc, inputs, rng)

    def _body(self, inputs: Inputs) -> Stats:
        """What a graph holds: the compiled step with the optimizer's update in its graph."""
        stats = self.compiled.update(inputs)
        self.runner.objective.after_update()
        return stats

    def forget(self, builds: bool) -> None:
        self.graphs.clear()  # a graph holds the old tensors' addresses
        self.compiled.forget(builds)

"""Compile mode: the objective's functional form compiled whole, checked against the eager step on the first call
for each input shape, with the optimizer's update inside the compiled graph where it can be."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ..state import Mark, equal_values, restore, rng_state, set_rng_state
from ..types import Fn, Inputs, Key, RngState, Snapshot, Stats, Tensors
from . import check
from .optimizer_update import in_graph_update
from .whole import compile_failure, compile_whole, with_update

if TYPE_CHECKING:
    from ..runner import Runner


class Compiled:
    """Compile mode's strategy for the step ``runner`` runs: the compiled gradients, checked on each new input
    shape (:meth:`first`), then the compiled step with the optimizer's update in its graph (Adam, AdamW, RMSprop
    without a process group) or the compiled gradients and a compiled optimizer step. Every failure to compile
    or to agree with eager makes the runner eager, saying why; an error of the user's module or inputs is
    raised as eager raises it."""

    mode = "compile"

    def __init__(self, runner: Runner):
        self.runner = runner
        self.objective, self.optimizer = runner.objective, runner.optimizer
        self._gradients: Fn | None = None  # the compiled gradients
        self._optimizer_step: Callable[[], object] | None = None
        # The compiled step with the optimizer's update in its graph: None until the first compiled step after a
        # check builds it, False where the optimizer's update cannot go into the graph.
        self._update: Fn | bool | None = None
        self._unreached: set[int] = set()  # trained parameters the objective does not reach (no gradient)

    def forget(self, builds: bool) -> None:
        """Drop the update built for the old tensors or parameter groups (``builds``: more than buffers changed)."""
        if builds:
            self._update = None

    def first(self, key: Key, inputs: Inputs, before: Snapshot, rng: RngState) -> Stats:
        """The compiled step for a new input shape, its gradients and updated buffers first compared with the
        eager step's (run from the same buffers and random numbers, then undone); on a mismatch or a compile
        failure, the eager step, in eager mode from now on."""
        device, runner = inputs[0].device, self.runner
        mark = runner.mark()
        eager_grads = runner.eager.gradients(inputs)  # refuses bad input before anything is compiled
        eager_buffers = [b.detach().clone() for _, b in runner.snapshot()]
        eager_changes = mark.changes()
        mark.undo()
        restore(before)
        set_rng_state(device, rng)
        lost = next((what for what, _, repeated in eager_changes if not repeated), None)
        if lost:
            return self._eager_instead(f"{lost}, which compile mode cannot follow", inputs, before, rng, mark)
        try:
            grads, stats = self.gradients(inputs)
        except Exception as exc:  # noqa: BLE001 - any compile failure: warn once and run eager
            return self._eager_instead(compile_failure(exc, runner.modules()), inputs, before, rng, mark)
        # Attributes the forward changes: compiled code must have left them as eager did.
        compiled_changes = {what: value for what, value, _ in mark.changes()}
        for what, value, _ in eager_changes:
            if what not in compiled_changes or not equal_values(compiled_changes[what], value):
                return self._eager_instead(
                    f"{what}, and compile mode does not repeat it as eager does", inputs, before, rng, mark
                )
        # Parameters the objective does not reach have no eager gradient (None: the optimizer skips them);
        # torch.func gives them zeros, which would still move Adam's moments. Keep them None.
        unreached = {i for i, e in enumerate(eager_grads) if e is None}
        if unreached != self._unreached:
            self._unreached, self._update = unreached, None
        names = [n for n, _ in self.objective.state.trained]
        rtol = check.tolerance(device, self.objective.precision)
        mismatch = check.first_mismatch(names, grads, eager_grads, rtol)
        if mismatch is not None:
            reference = self.float64_gradients(inputs, before, rng)
            mismatch = check.first_mismatch(names, grads, eager_grads, rtol, reference)
        mismatch = mismatch or check.buffer_mismatch(
            runner.buffer_names(), [b for _, b in runner.snapshot()], eager_buffers, rtol
        )
        if mismatch is not None:
            return self._eager_instead(
                f"{mismatch} on inputs of shape {tuple(inputs[0].shape)}", inputs, before, rng, mark
            )
        return self._apply(grads, stats, self.optimizer.step)

    def _eager_instead(self, why: str, inputs: Inputs, before: Snapshot, rng: RngState, mark: Mark) -> Stats:
        """Undo the compiled attempt's buffer updates and the attribute changes since ``mark``, make the runner
        eager (warning ``why``) and run the eager step from the same random numbers."""
        mark.undo()
        self.runner.fall_back(why)
        restore(before)
        set_rng_state(inputs[0].device, rng)
        return self.runner.eager.run(inputs)

    def float64_gradients(self, inputs: Inputs, before: Snapshot, rng: RngState) -> list[torch.Tensor]:
        """The eager step's gradients from float64 copies of the modules as they were before the step and of the
        inputs, drawing the same random numbers, autocast off: the judge of :meth:`first`. The modules and
        generators are left as the compiled step left them."""
        device, runner = inputs[0].device, self.runner
        after, after_rng = runner.snapshot(), rng_state(device)
        restore(before)
        set_rng_state(device, rng)
        twin = self.objective.float64()
        params = dict(twin.state.module.named_parameters())
        with torch.autocast(device.type, enabled=False):
            total, _ = twin.eager(*(t.double() if t is not None and t.is_floating_point() else t for t in inputs))
            grads = torch.autograd.grad(total, [params[n] for n, _ in self.objective.state.trained], allow_unused=True)
        restore(after)
        set_rng_state(device, after_rng)
        return list(grads)

    def _tensors(self) -> tuple[Tensors, Tensors, Tensors]:
        """The compiled functions' first arguments: trained parameters, the module's other tensors, and the
        other module's tensors (the generator step's critic)."""
        for s in self.runner.states:
            s.detach_hooked()
        params, others = self.objective.state.views
        aux = self.objective.aux.views[1] if self.objective.aux is not None else {}
        return params, others, aux

    def gradients(self, inputs: Inputs) -> tuple[list[torch.Tensor], Stats]:
        """The compiled gradients of the trained parameters for ``inputs``, and the step's statistics."""
        if self._gradients is None:
            self._gradients = compile_whole(torch.func.grad(self.objective.functional, has_aux=True))
        params, others, aux = self._tensors()
        grads, stats = self._gradients(params, others, aux, *self.objective.traced_inputs(inputs))
        return [grads[n] for n in params], stats

    def step(self, key: Key, inputs: Inputs) -> Stats:
        """One compiled step on a checked input shape: one compiled call that also applies the optimizer's update
        where :func:`.optimizer_update.in_graph_update` can (no process group), else the compiled gradients and a
        second, compiled optimizer step."""
        if self._update is None:
            self._update = self._build_update() or False
        rng = rng_state(inputs[0].device)
        try:
            if not self._update:
                return self._apply(*self.gradients(inputs), self._compiled_optimizer_step())
            stats = self.update(inputs)
        except Exception as exc:  # noqa: BLE001 - e.g. a graph for new guards that cannot compile (Dynamo's limit)
            return self.eager_after(exc, inputs, rng)
        self.objective.after_update()
        return stats

    def eager_after(self, exc: Exception, inputs: Inputs, rng: RngState) -> Stats:
        """After compiled code raised ``exc``: the eager step from the same random numbers. An error of the
        user's module or inputs raises there, as eager raises it, and leaves the mode as it was; otherwise
        compile's failure is warned of and the runner is eager from now on."""
        set_rng_state(inputs[0].device, rng)
        stats = self.runner.eager.run(inputs)
        self.runner.fall_back(compile_failure(exc, self.runner.modules()))
        return stats

    def has_update(self) -> bool:
        """Whether the compiled step with the optimizer's update in its graph is built."""
        return bool(self._update)

    def update(self, inputs: Inputs) -> Stats:
        """One call of the built compiled step with the optimizer's update in its graph (draws included; the
        objective's ``after_update`` not)."""
        assert callable(self._update)
        params, others, aux = self._tensors()
        stats: Stats = self._update(params, others, aux, *self.objective.traced_inputs(inputs))
        return stats

    def _build_update(self) -> Fn | None:
        """The whole step compiled with the optimizer's update in its graph (after the first step created the
        optimizer's state), or None where that cannot be."""
        reached = [(n, p) for i, (n, p) in enumerate(self.objective.state.trained) if i not in self._unreached]
        update = in_graph_update(self.optimizer, [p for _, p in reached]) if self.runner.group is None else None
        if update is None:
            return None
        for _, p in reached:
            p.grad = None  # the update in the graph leaves no gradients behind
        return compile_whole(with_update(self.objective.functional, update, [n for n, _ in reached]))

    def _compiled_optimizer_step(self) -> Callable[[], object]:
        if self._optimizer_step is None:
            # A fused optimizer is already one kernel: compiling it would only add compile time.
            fused = any(g.get("fused") for g in self.optimizer.param_groups)
            self._optimizer_step = self.optimizer.step if fused else torch.compile(self.optimizer.step)
        return self._optimizer_step

    def _apply(self, grads: list[torch.Tensor], stats: Stats, optimizer_step: Callable[[], object]) -> Stats:
        for i, (p, g) in enumerate(zip(self.objective.state.params, grads)):
            p.grad = None if i in self._unreached else g
        self.runner.eager.synchronise()
        optimizer_step()
        self.objective.after_update()
        return stats

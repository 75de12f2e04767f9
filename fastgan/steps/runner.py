"""One objective, one optimizer update per call, in one mode: eager, compile or graph.

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

import warnings

import torch

from .. import distributed
from ..optimizer_update import in_graph_update
from . import compile_check
from .compiled import compile_failure, compile_whole, with_update
from .graph import CaptureError, Graphs, StateChangedInForward
from .modes import GRAPH_MODES, auto_mode
from .state import Mark, ModuleState, equal_values, restore, rng_state, set_rng_state


def optimizer_layout(optimizer: torch.optim.Optimizer) -> tuple:
    """Which parameters each of ``optimizer``'s groups holds, by identity."""
    return tuple(tuple(map(id, g["params"])) for g in optimizer.param_groups)


def shape_key(inputs: tuple) -> tuple:
    """What a compiled or captured step is specialised on: each input's shape, dtype and strides."""
    return tuple(None if t is None else (tuple(t.shape), t.dtype, t.stride()) for t in inputs)


class Runner:
    """Runs ``objective`` (see :mod:`fastgan.steps.objectives`) as optimizer updates of ``objective.state``'s
    trained parameters, in ``mode``; ``name`` (the public step's class) heads its warnings."""

    def __init__(self, name: str, objective, optimizer: torch.optim.Optimizer, mode: str,
                 group: torch.distributed.ProcessGroup | None = None):
        self.name, self.objective, self.optimizer = name, objective, optimizer
        self.states: list[ModuleState] = [s for s in (objective.state, objective.aux) if s is not None]
        self.group = group
        self.requested_mode = mode
        self.mode: str | None = None  # resolved at the first call, from the inputs' device
        self._seen: set[tuple] = set()  # input shapes called with (checked, in compile mode)
        self._gradients = None  # the compiled gradients
        self._compiled_optimizer_step = None
        # The compiled step with the optimizer's update in its graph: None until the first compiled step after a
        # check builds it, False where the optimizer's update cannot go into the graph.
        self._update = None
        self._unreached: set[int] = set()  # trained parameters the objective does not reach (no gradient)
        self._graphs = Graphs(self._graph_body, self._mark)
        self._versions = tuple(s.version for s in self.states)  # the look-ups of the modules built for
        self._outlines = tuple(s.outline for s in self.states)
        self._layout = optimizer_layout(optimizer)  # the parameter groups built for

    @property
    def state(self) -> ModuleState:
        return self.objective.state

    # ----- mode selection -----

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
                warnings.warn(f"{self.name}: cannot compile ({why}); running {instead}", stacklevel=4)
                mode = instead
        if mode in GRAPH_MODES:
            why = self.graph_impossible() or (self.group is not None and "a process group is not supported yet "
                                            "(the gradient all-reduce is not captured)")
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

    def _fall_back(self, why: str) -> None:
        warnings.warn(f"{self.name}: {why}; running eager from now on", stacklevel=5)
        self.mode = "eager"

    def _mark(self) -> Mark:
        return Mark(self.states)

    def _modules(self) -> str:
        """The step's modules in messages: "critic (MyCritic)", "generator (G) and critic (D)"."""
        return " and ".join(f"{s.role} ({type(s.module).__name__})" for s in self.states)

    # ----- one call -----

    def __call__(self, inputs: tuple) -> dict[str, torch.Tensor]:
        """One update from ``inputs`` (tensors or None: the objective's ``eager`` arguments)."""
        self._follow_modules()
        self._follow_optimizer()
        if self.mode is None:
            self.mode = self.resolve_mode(inputs[0].device)
        key = shape_key(inputs)
        if key in self._seen:
            return self._run(key, inputs)
        # A new shape: refused input leaves the buffers and generators as they were.
        device = inputs[0].device
        before, rng = self._snapshot(), rng_state(device)
        try:
            stats = self._checked_compiled_step(inputs, before, rng) if self.compiles() else self._run(key, inputs)
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
        self._graphs.clear()  # a graph holds the old tensors' addresses
        outlines = tuple(s.outline for s in self.states)
        if outlines != self._outlines:  # not only buffers replaced: check and build anew
            self._seen.clear()
            self._update = None
        self._versions, self._outlines = versions, outlines

    def _follow_optimizer(self) -> None:
        """Follow parameters moved between groups, groups added or removed: the trained module is looked up again
        (refusing, by name, a trained parameter the optimizer no longer holds) and what was built or captured
        for the old groups is dropped."""
        layout = optimizer_layout(self.optimizer)
        if layout == self._layout:
            return
        self.state.refresh()
        self._layout, self._update = layout, None
        if self.mode in GRAPH_MODES and any(g.get("capturable") for g in self.optimizer.param_groups):
            for group in self.optimizer.param_groups:  # an added group, capturable as the others
                group["capturable"] = True
        self._follow_modules()

    def compiles(self) -> bool:
        return self.mode in ("compile", "compile+graph")

    def _run(self, key: tuple, inputs: tuple) -> dict[str, torch.Tensor]:
        if self.mode == "graph" or self.mode == "compile+graph" and self.has_compiled_update():
            return self._replayed(key, inputs)
        if self.compiles():
            return self._compiled_step(inputs)
        return self._eager_step(inputs)

    def _replayed(self, key: tuple, inputs: tuple) -> dict[str, torch.Tensor]:
        """The step's graph for this input shape replayed; for a new shape, a warm-up step and the capture."""
        if key in self._graphs:
            return self._graphs(key, inputs)
        rng = rng_state(inputs[0].device)
        try:
            return self._graphs(key, inputs)
        except StateChangedInForward as exc:  # the warm-up was a whole step: eager from the next one
            self._fall_back(f"{exc}, which a graph's replay cannot repeat")
            return exc.warmed
        except CaptureError as exc:
            if self.mode == "graph":
                raise
            warnings.warn(f"{self.name}: the compiled step does not capture ({exc}); compile mode from now on",
                          stacklevel=4)
            self.mode = "compile"
            return exc.warmed
        except Exception as exc:
            if self.mode == "graph":
                raise  # the warm-up is the eager step: its error as it is
            return self._eager_after(exc, inputs, rng)

    def _graph_body(self, inputs: tuple) -> dict[str, torch.Tensor]:
        """What a captured graph holds: the eager step (graph mode) or the compiled step with the optimizer's
        update in its graph (compile+graph)."""
        if self.mode == "graph":
            return self._eager_step(inputs)
        stats = self.compiled_update(inputs)
        self.objective.after_update()
        return stats

    def _snapshot(self) -> list:
        return [entry for s in self.states for entry in s.snapshot()]

    def _buffer_names(self) -> list[str]:
        return [f"{s.role}.{n}" for s in self.states for n, _ in s.buffers]

    # ----- eager -----

    def _eager_step(self, inputs: tuple) -> dict[str, torch.Tensor]:
        total, stats = self.objective.eager(*inputs)
        self._backward(total)
        self._synchronise()
        self.objective.optimizer_step(self.optimizer)
        self.objective.after_update()
        return stats

    def _backward(self, total: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        # Only into the trained parameters: a frozen one, or another module's, gets no gradient.
        if self.state.params:
            self.objective.scaled(total).backward(inputs=self.state.params)

    def _eager_gradients(self, inputs: tuple) -> tuple[list[torch.Tensor | None], dict]:
        total, stats = self.objective.eager(*inputs)
        self._backward(total)
        return [None if p.grad is None else p.grad.clone() for p in self.state.params], stats

    def _synchronise(self) -> None:
        """With a process group, every rank's gradients become their mean over the ranks."""
        if self.group is not None:
            distributed.all_reduce_gradients(self.state.params, self.group)

    # ----- compile -----

    def _checked_compiled_step(self, inputs: tuple, before: list, rng) -> dict[str, torch.Tensor]:
        """The compiled step for a new input shape, its gradients and updated buffers first compared with the
        eager step's (run from the same buffers and random numbers, then undone); on a mismatch or a compile
        failure, the eager step."""
        device = inputs[0].device
        mark = self._mark()
        eager_grads, _ = self._eager_gradients(inputs)  # refuses bad input before anything is compiled
        eager_buffers = [b.detach().clone() for _, b in self._snapshot()]
        eager_changes = mark.changes()
        mark.undo()
        restore(before)
        set_rng_state(device, rng)
        lost = next((what for what, _, repeated in eager_changes if not repeated), None)
        if lost:
            return self._eager_instead(f"{lost}, which compile mode cannot follow", inputs, before, rng, mark)
        try:
            grads, stats = self._compiled_gradients(inputs)
        except Exception as exc:  # noqa: BLE001 - any compile failure: warn once and run eager
            return self._eager_instead(compile_failure(exc, self._modules()), inputs, before, rng, mark)
        # Attributes the forward changes: compiled code must have left them as eager did.
        compiled_changes = {what: value for what, value, _ in mark.changes()}
        for what, value, _ in eager_changes:
            if what not in compiled_changes or not equal_values(compiled_changes[what], value):
                return self._eager_instead(f"{what}, and compile mode does not repeat it as eager does", inputs,
                                           before, rng, mark)
        # Parameters the objective does not reach have no eager gradient (None: the optimizer skips them);
        # torch.func gives them zeros, which would still move Adam's moments. Keep them None.
        unreached = {i for i, e in enumerate(eager_grads) if e is None}
        if unreached != self._unreached:
            self._unreached, self._update = unreached, None
        names, rtol = [n for n, _ in self.state.trained], compile_check.tolerance(device, self.objective.precision)
        mismatch = compile_check.first_mismatch(names, grads, eager_grads, rtol)
        if mismatch is not None:
            reference = self._float64_gradients(inputs, before, rng)
            mismatch = compile_check.first_mismatch(names, grads, eager_grads, rtol, reference)
        mismatch = mismatch or compile_check.buffer_mismatch(
            self._buffer_names(), [b for _, b in self._snapshot()], eager_buffers, rtol)
        if mismatch is not None:
            return self._eager_instead(f"{mismatch} on inputs of shape {tuple(inputs[0].shape)}", inputs, before,
                                       rng, mark)
        return self._apply(grads, stats, self.optimizer.step)

    def _eager_instead(self, why: str, inputs: tuple, before: list, rng, mark: Mark) -> dict[str, torch.Tensor]:
        """Warn, undo the compiled attempt's buffer updates and the attribute changes since ``mark`` and run the
        eager step from the same random numbers, in eager mode from now on."""
        mark.undo()
        self._fall_back(why)
        restore(before)
        set_rng_state(inputs[0].device, rng)
        return self._eager_step(inputs)

    def _float64_gradients(self, inputs: tuple, before: list, rng) -> list[torch.Tensor | None]:
        """The eager step's gradients from float64 copies of the modules as they were before the step and of the
        inputs, drawing the same random numbers, autocast off: the judge of
        :meth:`_checked_compiled_step`. The modules and generators are left as the compiled step left them."""
        device = inputs[0].device
        after, after_rng = self._snapshot(), rng_state(device)
        restore(before)
        set_rng_state(device, rng)
        twin = self.objective.float64()
        params = dict(twin.state.module.named_parameters())
        with torch.autocast(device.type, enabled=False):
            total, _ = twin.eager(*(t.double() if t is not None and t.is_floating_point() else t for t in inputs))
            grads = torch.autograd.grad(total, [params[n] for n, _ in self.state.trained], allow_unused=True)
        restore(after)
        set_rng_state(device, after_rng)
        return list(grads)

    def _tensors(self) -> tuple:
        """The compiled functions' first arguments: trained parameters, the module's other tensors, and the
        other module's tensors (the generator step's critic)."""
        for s in self.states:
            s.detach_hooked()
        params, others = self.state.views
        aux = self.objective.aux.views[1] if self.objective.aux is not None else {}
        return params, others, aux

    def _compiled_gradients(self, inputs: tuple):
        if self._gradients is None:
            self._gradients = compile_whole(torch.func.grad(self.objective.functional, has_aux=True))
        params, others, aux = self._tensors()
        grads, stats = self._gradients(params, others, aux, *self.objective.traced_inputs(inputs))
        return [grads[n] for n in params], stats

    def _compiled_step(self, inputs: tuple) -> dict[str, torch.Tensor]:
        """One compiled step on a checked input shape: one compiled call that also applies the optimizer's update
        where :func:`fastgan.optimizer_update.in_graph_update` can (no process group), else the compiled gradients
        and a second, compiled optimizer step."""
        if self._update is None:
            self._update = self._build_update() or False
        device = inputs[0].device
        rng = rng_state(device)
        try:
            if not self._update:
                return self._apply(*self._compiled_gradients(inputs), self._optimizer_step_compiled())
            stats = self.compiled_update(inputs)
        except Exception as exc:  # noqa: BLE001 - e.g. a graph for new guards that cannot compile (Dynamo's limit)
            return self._eager_after(exc, inputs, rng)
        self.objective.after_update()
        return stats

    def _eager_after(self, exc: Exception, inputs: tuple, rng) -> dict[str, torch.Tensor]:
        """After compiled code raised ``exc``: the eager step from the same random numbers. An error of the
        user's module or inputs raises there, as eager raises it, and leaves the mode as it was; otherwise
        compile's failure is warned of and the step runs eager from now on."""
        set_rng_state(inputs[0].device, rng)
        stats = self._eager_step(inputs)
        self._fall_back(compile_failure(exc, self._modules()))
        return stats

    def compiled_update(self, inputs: tuple) -> dict[str, torch.Tensor]:
        """One call of the built compiled step with the optimizer's update in its graph (draws included; the
        objective's ``after_update`` not)."""
        params, others, aux = self._tensors()
        return self._update(params, others, aux, *self.objective.traced_inputs(inputs))

    def has_compiled_update(self) -> bool:
        """Whether the compiled step with the optimizer's update in its graph is built."""
        return bool(self._update)

    def _build_update(self):
        """The whole step compiled with the optimizer's update in its graph (after the first step created the
        optimizer's state), or None where that cannot be."""
        reached = [(n, p) for i, (n, p) in enumerate(self.state.trained) if i not in self._unreached]
        update = in_graph_update(self.optimizer, [p for _, p in reached]) if self.group is None else None
        if update is None:
            return None
        for _, p in reached:
            p.grad = None  # the update in the graph leaves no gradients behind
        return compile_whole(with_update(self.objective.functional, update, [n for n, _ in reached]))

    def _optimizer_step_compiled(self):
        if self._compiled_optimizer_step is None:
            # A fused optimizer is already one kernel: compiling it would only add compile time.
            fused = any(g.get("fused") for g in self.optimizer.param_groups)
            self._compiled_optimizer_step = self.optimizer.step if fused else torch.compile(self.optimizer.step)
        return self._compiled_optimizer_step

    def _apply(self, grads, stats, optimizer_step) -> dict[str, torch.Tensor]:
        for i, (p, g) in enumerate(zip(self.state.params, grads)):
            p.grad = None if i in self._unreached else g
        self._synchronise()
        optimizer_step()
        self.objective.after_update()
        return stats

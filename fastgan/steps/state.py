"""A module's tensors as the steps use them, checked at every call against what the module holds.

A step looks a module's tensors up once (walking the module tree costs more than a small step's kernels) and
then, at every call, checks cheaply that they are still the ones the module holds: no parameter, buffer or
submodule replaced (``critic.labels = y``, ``load_state_dict(assign=True)``, ``p.data = x``), no
``requires_grad`` or ``train()``/``eval()`` flag changed. A step that finds a change looks the tensors up
again and drops what it compiled or captured for the old ones.

The trained parameters are those that require grad; the optimizer must hold each of them (a parameter that
requires grad and that the optimizer does not hold is refused by name: replaced after the optimizer was built,
it would silently stop training in every mode).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from .types import RngState, Tensors

# What every nn.Module keeps in its ``__dict__``: containers and flags that ModuleState follows itself.
_MODULE_INTERNALS = frozenset(nn.Module().__dict__)
_MISSING = object()


class ModuleState:
    """The tensors of ``module`` by name: ``views`` = (trained parameters, everything else), detached.

    Args:
        module: the module.
        role: its name in messages ("critic", "generator").
        optimizer: the optimizer that trains it, or None for a module a step only calls (the generator step's
            critic): then nothing is trained and every parameter is among the other tensors.
    """

    def __init__(self, module: nn.Module, role: str, optimizer: torch.optim.Optimizer | None = None):
        self.module, self.role, self.optimizer = module, role, optimizer
        self.version = 0  # counts the look-ups
        self.refresh()

    def refresh(self) -> None:
        """Look the module's tensors up again (``ValueError`` for a trained parameter the optimizer lacks)."""
        named = list(self.module.named_parameters())
        trained = [(n, p) for n, p in named if p.requires_grad and self.optimizer is not None]
        if trained and self.optimizer is not None:
            held = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
            missing = [n for n, p in trained if id(p) not in held]
            if missing:
                raise ValueError(
                    f"{self.role} parameter(s) {', '.join(map(repr, missing))} require grad but the optimizer does "
                    "not hold them (replaced after the optimizer was built, e.g. by load_state_dict(assign=True), "
                    "or left out of it): build the optimizer over the current parameters, or call "
                    "requires_grad_(False) on those you do not train"
                )
        trained_ids = {id(p) for _, p in trained}
        self.trained = trained
        self.params = [p for _, p in trained]
        self.buffers = list(self.module.named_buffers())
        # Detached views share their tensors' storage: the optimizer's in-place updates show through, and
        # compiled code sees no tensor that requires grad.
        others = {n: p.detach() for n, p in named if id(p) not in trained_ids}
        others.update(self.buffers)
        self.views = ({n: p.detach() for n, p in trained}, others)
        self.buffer_shapes = [(tuple(b.shape), b.dtype) for _, b in self.buffers]
        modules = list(self.module.modules())
        self._slots = [
            (d, k, v) for m in modules for d in (m._parameters, m._buffers, m._modules) for k, v in d.items()
        ]
        self._sizes = [(d, len(d)) for m in modules for d in (m._parameters, m._buffers, m._modules)]
        self._flags = [(p, p.requires_grad) for _, p in named]
        self._modes = [(m, m.training) for m in modules]
        self._storage = [(t, t.data_ptr()) for t in [*(p for _, p in named), *(b for _, b in self.buffers)]]
        # The older spectral-norm API (torch.nn.utils.spectral_norm) stores the weight it computes on the module
        # at every forward: compiled code must put back what was there (see functional_call).
        self.hooked = [
            (m, hook.name) for m in modules for hook in m._forward_pre_hooks.values() if isinstance(hook, SpectralNorm)
        ]
        # What compiled code depends on besides the buffers' identity: equal outlines before and after a look-up
        # mean that only buffers were replaced, by tensors compiled code takes as they are.
        self.outline = (
            tuple((n, id(p), p.requires_grad) for n, p in named),
            tuple((type(m), m.training) for m in modules),
            tuple(self.buffer_shapes),
            tuple(n for n, _ in self.buffers),
        )
        self.version += 1

    def follow(self) -> None:
        """:meth:`refresh` if the module no longer holds what was looked up last."""
        if not self.current():
            self.refresh()

    def current(self) -> bool:
        """Whether the module still holds exactly the tensors, submodules and flags looked up last."""
        for d, k, v in self._slots:
            if d.get(k) is not v:
                return False
        for d, n in self._sizes:
            if len(d) != n:
                return False
        for p, flag in self._flags:
            if p.requires_grad is not flag:
                return False
        for m, training in self._modes:
            if m.training is not training:
                return False
        for t, pointer in self._storage:
            if t.data_ptr() != pointer:
                return False
        return True

    def snapshot(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Copies of the buffers (a step updates them in place: spectral norm's u and v, BatchNorm's statistics)."""
        return [(b, b.detach().clone()) for _, b in self.buffers]

    def detach_hooked(self) -> None:
        """Detach the weights the older spectral-norm API's hook left on the module (before compiled code reads
        them: it keeps them, see :meth:`functional_call`, and must not keep a tensor of eager's graph)."""
        for m, name in self.hooked:
            value = getattr(m, name, None)
            if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                setattr(m, name, value.detach())

    def functional_call(self, tensors: tuple[Tensors, Tensors], *args: Any) -> Any:
        """``torch.func.functional_call(module, tensors, args)``, leaving on the module what the older
        spectral-norm API's hook found there (it stores the weight it computes, which would leak a traced
        tensor out of compiled code; the hook computes it afresh at every forward anyway)."""
        kept = [getattr(m, name) for m, name in self.hooked]
        out = torch.func.functional_call(self.module, tensors, args)
        for (m, name), value in zip(self.hooked, kept):
            setattr(m, name, value)
        return out


class Mark:
    """What ``states``' modules hold now that a forward could change besides their tensors' contents: each
    parameter, buffer and submodule slot, and each plain Python attribute (the weights the older spectral-norm
    and weight-norm hooks recompute at every forward aside). :meth:`changes` lists what a forward changed since;
    :meth:`undo` puts it back.

    Graph replays run no Python, so any change stops a capture. Compiled code loses a reassigned slot (the
    functional call puts the module's own tensors back) and recompiles for every new value of a number, but
    repeats other attributes' changes (Dynamo replays them after the graph): those are compared with eager's."""

    def __init__(self, states: list[ModuleState]):
        # label, dict, key, value, contents, is a slot
        self.entries: list[tuple[str, dict[str, Any], str, object, list[Any] | None, bool]] = []
        self.keys: list[tuple[str, dict[str, Any], frozenset[str], bool]] = []
        for state in states:
            recomputed = {
                (id(m), hook.name)
                for m in state.module.modules()
                for hook in m._forward_pre_hooks.values()
                if isinstance(hook, (SpectralNorm, WeightNorm))
            }
            for path, m in state.module.named_modules():
                prefix = ".".join(filter(None, (state.role, path)))
                attributes = {
                    k: v for k, v in vars(m).items() if k not in _MODULE_INTERNALS and (id(m), k) not in recomputed
                }
                for d in (m._parameters, m._buffers, m._modules, attributes):
                    target = vars(m) if d is attributes else d
                    self.keys.append((prefix, target, frozenset(target), d is not attributes))
                    self.entries += [
                        (f"{prefix}.{k}", target, k, v, _contents(v), d is not attributes) for k, v in d.items()
                    ]

    def changes(self) -> list[tuple[str, object, bool]]:
        """``(what, value now, whether compiled code can repeat it)`` for each slot or attribute changed, ``what``
        as ``"critic.calls is reassigned in forward"`` (or changed in place, or set)."""
        out = []
        for label, d, key, value, contents, slot in self.entries:
            now = d.get(key, _MISSING)
            if now is not value:
                out.append((f"{label} is reassigned in forward", now, not slot and not _traced_apart(now)))
            elif contents is not None and not _same(now_contents := _contents(now) or [], contents):
                new = [x for x in now_contents if not any(x is y for y in contents)]
                out.append((f"{label} is changed in forward", now_contents, not any(map(_traced_apart, new))))
        for prefix, d, keys, slot in self.keys:
            out += [(f"{prefix}.{k} is set in forward", d[k], not slot) for k in d if k not in keys]
        return out

    def changed(self) -> str | None:
        """The first change (:meth:`changes`), or None."""
        return next((what for what, _, _ in self.changes()), None)

    def undo(self) -> None:
        """Put back every slot and attribute as marked (containers' contents in place); drop those added."""
        for _, d, key, value, contents, _ in self.entries:
            d[key] = value
            if contents is None:
                continue
            if isinstance(value, list):
                value[:] = contents
            elif isinstance(value, (dict, set)):
                value.clear()
                value.update(dict(contents) if isinstance(value, dict) else contents)
        for _, d, keys, _ in self.keys:
            for k in [k for k in d if k not in keys]:
                del d[k]


def _traced_apart(value: object) -> bool:
    """Whether compiled code cannot keep ``value`` as eager does: a number (Dynamo compiles anew for each value),
    or a tensor (a traced one would be kept); for a dict's item, its value."""
    if isinstance(value, tuple) and len(value) == 2:
        value = value[1]
    return isinstance(value, torch.Tensor) or isinstance(value, (int, float)) and not isinstance(value, bool)


def _contents(value: object) -> list[Any] | None:
    """A mutable container's elements (a dict's items), to see them changed in place; None for anything else."""
    if isinstance(value, dict):
        return list(value.items())
    return list(value) if isinstance(value, (list, set)) else None


def _same(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(
        x is y or isinstance(x, tuple) and x[0] == y[0] and x[1] is y[1] for x, y in zip(a, b)
    )


def equal_values(a: object, b: object) -> bool:
    """Whether two attribute values agree: tensors within fp32 rounding of a different order, containers
    element by element, anything else by ``==``."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and torch.allclose(a.detach().double(), b.detach().double(), 1e-3, 1e-6, equal_nan=True)
        )
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(equal_values, a, b))
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - a value without a truth for ==: not known to agree
        return False


def restore(snapshot: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Put the buffers of a :meth:`ModuleState.snapshot` back."""
    with torch.no_grad():
        for buffer, saved in snapshot:
            buffer.copy_(saved)


def copy_module(module: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy of ``module`` (in ``dtype`` when given), also of one using the older spectral-norm API, whose
    computed weight (a non-leaf tensor ``deepcopy`` refuses) is recomputed by its hook at every forward."""
    for m in module.modules():
        for hook in m._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm) and isinstance(getattr(m, hook.name, None), torch.Tensor):
                setattr(m, hook.name, getattr(m, hook.name).detach())
    copied = copy.deepcopy(module)
    return copied if dtype is None else copied.to(dtype)


def rng_state(device: torch.device) -> RngState:
    """The default generators' state (the CPU's, and the device's on CUDA)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_rng_state(device: torch.device, state: RngState) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)

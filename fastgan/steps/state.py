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

import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm


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
        if trained:
            held = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
            missing = [n for n, p in trained if id(p) not in held]
            if missing:
                raise ValueError(
                    f"{self.role} parameter(s) {', '.join(map(repr, missing))} require grad but the optimizer does "
                    "not hold them (replaced after the optimizer was built, e.g. by load_state_dict(assign=True), "
                    "or left out of it): build the optimizer over the current parameters, or call "
                    "requires_grad_(False) on those you do not train")
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
        self._slots = [(d, k, v) for m in modules for d in (m._parameters, m._buffers, m._modules)
                       for k, v in d.items()]
        self._sizes = [(d, len(d)) for m in modules for d in (m._parameters, m._buffers, m._modules)]
        self._flags = [(p, p.requires_grad) for _, p in named]
        self._modes = [(m, m.training) for m in modules]
        self._storage = [(t, t.data_ptr()) for t in [*(p for _, p in named), *(b for _, b in self.buffers)]]
        # The older spectral-norm API (torch.nn.utils.spectral_norm) stores the weight it computes on the module
        # at every forward: compiled code must put back what was there (see functional_call).
        self.hooked = [(m, hook.name) for m in modules for hook in m._forward_pre_hooks.values()
                       if isinstance(hook, SpectralNorm)]
        # What compiled code depends on besides the buffers' identity: equal outlines before and after a look-up
        # mean that only buffers were replaced, by tensors compiled code takes as they are.
        self.outline = (tuple((n, id(p), p.requires_grad) for n, p in named),
                        tuple((type(m), m.training) for m in modules), tuple(self.buffer_shapes),
                        tuple(n for n, _ in self.buffers))
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

    def functional_call(self, tensors: tuple[dict, dict], *args):
        """``torch.func.functional_call(module, tensors, args)``, leaving on the module what the older
        spectral-norm API's hook found there (it stores the weight it computes, which would leak a traced
        tensor out of compiled code; the hook computes it afresh at every forward anyway)."""
        kept = [getattr(m, name) for m, name in self.hooked]
        out = torch.func.functional_call(self.module, tensors, args)
        for (m, name), value in zip(self.hooked, kept):
            setattr(m, name, value)
        return out


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


def rng_state(device: torch.device):
    """The default generators' state (the CPU's, and the device's on CUDA)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_rng_state(device: torch.device, state) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)

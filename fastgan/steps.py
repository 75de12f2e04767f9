"""Whole training steps: one call is zero grad, forward, loss, penalty, backward, optimizer step and clipping
(and the EMA update for the generator), eager, compiled, or replayed as one CUDA graph.

    critic_step = fastgan.CriticStep(D, opt_d, loss="wgan", penalty="gp", penalty_weight=10.0, mode="compile")
    generator_step = fastgan.GeneratorStep(G, D, opt_g, loss="wgan", ema=0.999)
    for real in batches:
        stats = critic_step(real, G(z).detach())   # detached tensors: no host sync
        generator_step(torch.randn(B, latent, device=real.device))

Modes (``mode=``):

- ``eager``: the fused ops of :mod:`fastgan`, step by step.
- ``compile``: the critic's loss, input gradient and penalty written with ``torch.func`` (``functional_call``
  and a nested ``grad``, which ``torch.compile`` traces where ``autograd.grad(create_graph=True)`` is refused),
  compiled whole with ``fullgraph=True`` and without the zero branches of the double backward
  (:mod:`fastgan.zero_branches`). Adam's, AdamW's and RMSprop's update runs inside the same graph
  (:mod:`fastgan.optimizer_update`; parameters are then left without ``.grad``); other optimizers' step is
  compiled apart. Compiled double backward has had silent wrong answers (pytorch/pytorch#136662), so the first
  call for each input shape also runs the eager step's gradients and compares them before an (eager) optimizer
  step; where they differ by more than rounding usually makes, float64 gradients of the same step judge (a
  WGAN critic's gradients cancel between real and fake, and carry fp32 errors of 1e-3 in eager too); a
  mismatch warns and falls back to eager for good. Where compiling is impossible (no C compiler, BatchNorm in
  training mode under a penalty, an fp16 ``GradScaler``, a torch that cannot trace it) the step warns once,
  saying why, and runs eager.
- ``graph`` (CUDA): the eager step captured once per input shape as one CUDA graph (warm-up step on a side
  stream, static inputs, the optimizer made capturable, alpha and noise drawn inside the graph), replayed
  on every call; ``ValueError`` on CPU tensors, with a process group or with an fp16 ``GradScaler``.
- ``auto``: :func:`auto_mode`: ``compile`` on a CPU; ``graph`` on CUDA in one process (``compile`` where the
  optimizer cannot be made capturable or a process group is given); see there why.

Every mode draws the same random numbers from the default generators (alpha ``torch.rand(B)`` and, for DRAGAN,
noise ``torch.rand(real.shape)`` whatever its memory format, in that order), so the same seed trains the same
model in any mode. With a process group of N ranks each holding B rows, they are drawn for all N * B rows on
every rank and each keeps its own, so the same seed also trains the same model on any number of processes.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from . import _checks, distributed
from .amp import input_gradients
from .clipping import clip_weights_
from .interpolation import _interpolation_fwd_torch, check_pair, interpolated_points
from .losses import LOSS_NAMES, loss_terms, terms_loss
from .optimizer_update import in_graph_update
from .penalty import _penalty_fwd_torch, norm_penalty
from .zero_branches import ZeroBranches

MODES = ("auto", "eager", "compile", "graph")
# The largest relative difference (norm per tensor) allowed between compiled and eager gradients on a new shape:
# fp32 arithmetic in a different order, or bf16/fp16 autocast (where a wrong term is still off by far more).
COMPILE_CHECK_RTOL = 1e-3
COMPILE_CHECK_RTOL_AUTOCAST = 5e-2
# Where compiled and eager gradients differ by more than that, float64 gradients of the same step judge: the
# compiled ones pass if they are within this many times eager's own distance from them. Gradients that cancel (a
# WGAN critic's on real and fake batches alike) carry fp32 rounding errors of 1e-3 relative in eager as well.
COMPILE_CHECK_NOISE_FACTOR = 4.0
MAX_GRAPHS = 8  # captured input shapes kept per step
# A parameter whose gradient norm is below this fraction of the whole gradient's has none but rounding noise.
ZERO_GRADIENT = 1e-6


@dataclass(frozen=True)
class _PenaltySpec:
    center: float
    one_sided: bool
    at: str  # "interpolates", "real", "fake" or "dragan"


PENALTIES = {
    "gp": _PenaltySpec(1.0, False, "interpolates"),
    "lp": _PenaltySpec(1.0, True, "interpolates"),
    "zero-centred": _PenaltySpec(0.0, False, "interpolates"),
    "r1": _PenaltySpec(0.0, False, "real"),
    "r2": _PenaltySpec(0.0, False, "fake"),
    "dragan": _PenaltySpec(1.0, False, "dragan"),
}
DRAGAN_PERTURBATION = 0.5


def _penalty_points(spec: _PenaltySpec, real, fake, alpha, noise, lerp: Callable) -> torch.Tensor:
    """Where the critic's input gradient is taken (``lerp(a, b, alpha) = b + alpha * (a - b)`` per sample)."""
    if spec.at == "interpolates":
        return lerp(real, fake, alpha)
    if spec.at == "real":
        return real
    if spec.at == "fake":
        return fake
    perturbed = torch.addcmul(real, noise, DRAGAN_PERTURBATION * real.std())
    return lerp(perturbed, real, alpha)


def _draws(spec: _PenaltySpec | None, real: torch.Tensor, shard: distributed.Shard,
           noise_dtype: torch.dtype | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The step's random numbers, in a fixed order: alpha (B,), then DRAGAN's noise (in ``noise_dtype``, by
    default the samples'); drawn for the global batch and sliced to this rank's rows, so that they do not depend
    on the number of processes."""
    needs_alpha = spec is not None and spec.at in ("interpolates", "dragan")
    rows = real.shape[0] * shard.world_size
    alpha = shard.rows(torch.rand(rows, device=real.device)) if needs_alpha else None
    noise = None
    if spec is not None and spec.at == "dragan":
        noise = shard.rows(torch.rand((rows, *real.shape[1:]), device=real.device, dtype=noise_dtype or real.dtype))
    return alpha, noise


def _scores_of_both(scores: Callable, real: torch.Tensor, fake: torch.Tensor, joint: bool):
    """The critic's scores of real and fake, in one pass over both batches when ``joint`` (half the launches
    and larger matrix products; only for critics whose samples do not interact)."""
    if not joint:
        return scores(real), scores(fake)
    both = scores(torch.cat([real, fake]))
    return both[: real.shape[0]], both[real.shape[0]:]


def _has_batch_statistics(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in module.modules())


def auto_mode(device: torch.device, process_group: torch.distributed.ProcessGroup | None = None) -> str:
    """The mode ``mode="auto"`` runs on ``device``, chosen by measurement.

    CPU: ``compile``. Measured on a 2-core CPU (torch 2.14.1), a compiled WGAN-GP critic step is 2.1x eager on
    the seed's MLP, 1.6x on PyTorch-GAN's and 1.2x on a DCGAN critic, and ``fastgan train``'s default run makes
    234 steps/s once compiled (about 100 eager); compiling costs 10-30 s on the first call (more with an empty
    Inductor cache), which a run of a few thousand steps earns back.

    CUDA: ``graph``. Measured on an H200 (torch 2.11, batch 64, host time included), the captured critic step
    is 9.9x the seed's eager step on the seed's MLP (0.30 ms against 2.94), 10x on PyTorch-GAN's and 1.04x on a
    DCGAN critic, against 2.1x, -, 1.17x compiled and 0.73x, 0.90x, 0.85x eager: a small step is some 50
    kernel launches of host time, which one graph replay removes. With a process group (the gradient
    all-reduce is not captured), or where the optimizer cannot be made capturable (the steps then choose
    ``compile`` themselves): ``compile``.
    """
    if torch.device(device).type == "cpu":
        return "compile"
    return "graph" if process_group is None else "compile"


def _check_mode(mode: object) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


class _Step:
    """What both steps share: mode resolution, the compiled-versus-eager check and CUDA-graph replay."""

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, mode: str,
                 group: torch.distributed.ProcessGroup | None = None):
        if not isinstance(module, nn.Module):
            raise TypeError(f"expected an nn.Module, got {type(module).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.module, self.optimizer = module, optimizer
        self.group, self.shard = group, distributed.Shard.of(group)
        self._state = _StateCache(module)
        self.requested_mode = _check_mode(mode)
        self.mode: str | None = None  # resolved at the first call, from the inputs' device
        self._checked_shapes: set[tuple] = set()
        self._compiled_grad = None
        self._compiled_optimizer_step = None
        # The compiled step with the optimizer's update in its graph: None until the first compiled step after a
        # check builds it, False where the optimizer's update cannot go into the graph.
        self._compiled_updating = None
        self._updating_for: tuple[int, ...] = ()  # the parameters (ids) it is built for
        self._graphs: dict[tuple, tuple] = {}
        self._unreached: set[int] = set()
        self._noise_dtype: torch.dtype | None = None  # DRAGAN's noise dtype (None: the samples'); see _draws

    # ----- mode selection -----

    def _resolve_mode(self, device: torch.device) -> str:
        mode = self.requested_mode
        if mode == "graph" and device.type != "cuda":
            raise ValueError(f"mode='graph' captures CUDA graphs: it needs CUDA tensors, got {device.type} tensors")
        if mode == "auto":
            mode = auto_mode(device, self.group)
            if mode == "graph" and self._graph_impossible():
                mode = "compile"  # e.g. an optimizer without a capturable option, or an fp16 GradScaler
        if mode == "compile":
            why = self._compile_impossible()
            if why:
                warnings.warn(f"{type(self).__name__}: cannot compile ({why}); running eager", stacklevel=3)
                mode = "eager"
        if mode == "graph":
            why = self._graph_impossible() or (self.group is not None and "a process group is not supported yet "
                                             "(the gradient all-reduce is not captured)")
            if why:
                raise ValueError(f"mode='graph' cannot capture this step: {why}")
            self._make_capturable()
        return mode

    def _compile_impossible(self) -> str | None:
        return None

    def _graph_impossible(self) -> str | None:
        if "capturable" not in self.optimizer.defaults:
            return f"{type(self.optimizer).__name__} has no capturable option"
        if not all(g.get("capturable") for g in self.optimizer.param_groups) and self.optimizer.state:
            return "the optimizer already holds state without capturable=True; create it with capturable=True"
        return None

    def _make_capturable(self) -> None:
        for group in self.optimizer.param_groups:
            group["capturable"] = True

    def _fall_back(self, why: str) -> None:
        warnings.warn(f"{type(self).__name__}: {why}; running eager from now on", stacklevel=4)
        self.mode = "eager"

    # ----- running one call -----

    def _run(self, inputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        if self.mode is None:
            self.mode = self._resolve_mode(inputs[0].device)
        if self.mode == "graph":
            return self._replay(inputs)
        if self.mode == "compile":
            key = _shape_key(inputs)
            if key in self._checked_shapes:
                return self._compiled_step(inputs)
            rng = _rng_state(inputs[0].device)
            try:
                stats = self._checked_compiled_step(inputs, rng)
                self._checked_shapes.add(key)
                return stats
            except Exception as exc:  # noqa: BLE001 - any compile failure: warn once and run eager
                self._fall_back(_compile_failure(exc))
                _set_rng_state(inputs[0].device, rng)  # the eager step draws what the compiled one would have
        return self._eager_step(inputs)

    def _checked_compiled_step(self, inputs, rng) -> dict[str, torch.Tensor]:
        """The compiled step for a new input shape (``rng``: the generators' state before it), its gradients
        first compared with eager ones; on a mismatch, the eager step from the same random numbers."""
        device = inputs[0].device
        self._state.refresh()
        eager_grads = self._eager_gradients(inputs)
        _set_rng_state(device, rng)
        grads, stats = self._compiled_gradients(inputs)
        # Parameters the objective does not reach have no eager gradient (None: the optimizer skips them);
        # torch.func gives them zeros, which would still move Adam's moments. Keep them None.
        self._unreached = {i for i, e in enumerate(eager_grads) if e is None}
        reached = tuple(id(p) for i, p in enumerate(self._params()) if i not in self._unreached)
        if reached != self._updating_for:  # parameters replaced or frozen: build the whole-step graph anew
            self._updating_for, self._compiled_updating = reached, None
        names, rtol = self._param_names(), _check_rtol(device)
        mismatch = _first_mismatch(names, grads, eager_grads, rtol)
        if mismatch is not None:
            after = _rng_state(device)
            _set_rng_state(device, rng)
            reference = self._float64_gradients(inputs)
            _set_rng_state(device, after)
            mismatch = _first_mismatch(names, grads, eager_grads, rtol, reference)
        if mismatch is None:
            return self._apply(grads, stats, self.optimizer.step)
        self._fall_back(f"{mismatch} on inputs of shape {tuple(inputs[0].shape)}")
        _set_rng_state(device, rng)
        return self._eager_step(inputs)

    def _float64_gradients(self, inputs) -> list[torch.Tensor | None]:
        """The eager step's gradients from float64 copies of the modules and inputs, drawing the same random
        numbers (the noise in the inputs' dtype), autocast off: the judge of :meth:`_checked_compiled_step`."""
        twin = self._float64_twin()
        twin._noise_dtype = inputs[0].dtype
        with torch.autocast(inputs[0].device.type, enabled=False):
            total, _ = twin._objective(*(t.double() for t in inputs))
            return list(torch.autograd.grad(total, twin._params(), allow_unused=True))

    def _compiled_step(self, inputs) -> dict[str, torch.Tensor]:
        """One compiled step on a checked input shape: one compiled call that also applies the optimizer's update
        where :func:`fastgan.optimizer_update.in_graph_update` can (no process group), else the compiled gradients
        and a second, compiled optimizer step."""
        if self._compiled_updating is None:
            self._compiled_updating = self._build_updating() or False
        if not self._compiled_updating:
            return self._apply(*self._compiled_gradients(inputs), self._optimizer_step_compiled())
        device = inputs[0].device
        rng = _rng_state(device)
        try:
            stats = self._compiled_update(inputs)
        except Exception as exc:  # noqa: BLE001 - a graph for new guards that cannot compile (Dynamo's limit)
            self._fall_back(_compile_failure(exc))
            _set_rng_state(device, rng)
            return self._eager_step(inputs)
        self._after_update()
        return stats

    def _compiled_update(self, inputs) -> dict[str, torch.Tensor]:
        """One call of the built compiled step with the optimizer's update in its graph (draws included)."""
        params, others = self._state.split()
        with self._frozen_critic():
            return self._compiled_updating(params, others, *self._traced_inputs(inputs))

    def _build_updating(self) -> Callable | None:
        """The whole step compiled with the optimizer's update in its graph (after the first step created the
        optimizer's state), or None where that cannot be."""
        reached = [(n, p) for i, (n, p) in enumerate(self._state.trained) if i not in self._unreached]
        update = in_graph_update(self.optimizer, [p for _, p in reached]) if self.group is None else None
        if update is None:
            return None
        for _, p in reached:
            p.grad = None  # the update in the graph leaves no gradients behind
        return _compile(_updating(self._functional_objective, update, [n for n, _ in reached]))

    def _compiled_gradients(self, inputs):
        if self._compiled_grad is None:
            self._compiled_grad = _compile(torch.func.grad(self._functional_objective, has_aux=True))
        params, others = self._state.split()
        with self._frozen_critic():
            grads, stats = self._compiled_grad(params, others, *self._traced_inputs(inputs))
        return [grads[n] for n in params], stats

    def _optimizer_step_compiled(self) -> Callable[[], object]:
        if self._compiled_optimizer_step is None:
            # A fused optimizer is already one kernel: compiling it would only add compile time.
            fused = any(g.get("fused") for g in self.optimizer.param_groups)
            self._compiled_optimizer_step = self.optimizer.step if fused else torch.compile(self.optimizer.step)
        return self._compiled_optimizer_step

    def _apply(self, grads, stats, optimizer_step: Callable[[], object]) -> dict[str, torch.Tensor]:
        for i, (p, g) in enumerate(zip(self._params(), grads)):
            p.grad = None if i in self._unreached else g
        self._synchronise()
        optimizer_step()
        self._after_update()
        return stats

    def _replay(self, inputs) -> dict[str, torch.Tensor]:
        key = _shape_key(inputs)
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= MAX_GRAPHS:
                self._graphs.pop(next(iter(self._graphs)))
            static = [t.clone() for t in inputs]
            # The warm-up is a real step (kernels compiled, optimizer state and tables allocated).
            stats, graph, static_stats = warm_then_capture(lambda: self._eager_step(inputs),
                                                           lambda: self._eager_step(tuple(static)))
            self._graphs[key] = (graph, static, static_stats)
            return stats
        graph, static, static_stats = entry
        for s, t in zip(static, inputs):
            s.copy_(t)
        graph.replay()
        return {k: v.clone() for k, v in static_stats.items()}

    # ----- what each step defines -----

    def _params(self) -> list[torch.Tensor]:
        return [p for _, p in self._state.trained]

    def _param_names(self) -> list[str]:
        return [n for n, _ in self._state.trained]

    def _eager_step(self, inputs) -> dict[str, torch.Tensor]:
        total, stats = self._objective(*inputs)
        self._backward(total)
        self._synchronise()
        self._optimizer_step()
        self._after_update()
        return stats

    def _synchronise(self) -> None:
        """With a process group, every rank's gradients become their mean over the ranks."""
        if self.group is not None:
            distributed.all_reduce_gradients(self._params(), self.group)

    def _eager_gradients(self, inputs) -> list[torch.Tensor | None]:
        total, _ = self._objective(*inputs)
        self._backward(total)
        return [None if p.grad is None else p.grad.clone() for p in self._params()]

    def _backward(self, total: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()

    def _optimizer_step(self) -> None:
        self.optimizer.step()

    def _objective(self, *inputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The eager objective to minimise and its detached statistics (drawing the step's random numbers)."""
        raise NotImplementedError

    def _functional_objective(self, params, buffers, *inputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective in plain PyTorch and torch.func (``params`` and ``buffers`` by name), which
        torch.compile traces whole."""
        raise NotImplementedError

    def _traced_inputs(self, inputs) -> tuple:
        """What :meth:`_functional_objective` takes after the module's tensors (drawing the random numbers)."""
        return inputs

    def _frozen_critic(self) -> contextlib.AbstractContextManager:
        """Held around the compiled calls (the generator's step freezes its critic)."""
        return contextlib.nullcontext()

    def _float64_twin(self) -> _Step:
        """A shallow copy of this step whose modules are float64 copies (to compute gradients, not to train)."""
        raise NotImplementedError

    def _after_update(self) -> None:
        pass


def warm_then_capture(warm_up: Callable[[], object], body: Callable[[], object]):
    """``warm_up()`` on a side stream, then ``body()`` captured as one CUDA graph (not run): returns the
    warm-up's result, the graph and the captured call's outputs (refreshed by every replay)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        warmed = warm_up()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = body()
    return warmed, graph, captured


def _float64_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).double()


# One options dict (one pass object) for every step: Dynamo reuses a graph only under an equal backend.
_INDUCTOR_OPTIONS = {"post_grad_custom_pre_pass": ZeroBranches()}


def _updating(objective: Callable, update: Callable, names: list[str]) -> Callable:
    """``objective``'s gradients for the parameters ``names`` applied by ``update`` (see
    :func:`fastgan.optimizer_update.in_graph_update`); returns the objective's statistics."""
    gradients = torch.func.grad(objective, has_aux=True)

    def step(params, *inputs):
        grads, stats = gradients(params, *inputs)
        with torch.no_grad():
            update([params[n] for n in names], [grads[n] for n in names])
        return stats

    return step


def _compile(fn: Callable) -> Callable:
    """``fn`` compiled whole for one input shape, without the zero branches of the double backward (see
    :mod:`fastgan.zero_branches`). (Inductor's C++ wrapper was measured on a CPU: 2.5% faster on the seed's MLP
    critic step for about 10 s more compilation per graph, so it is left off.)

    ``fn`` is called through a function with a code object of its own: Dynamo keeps at most ``recompile_limit``
    (8) graphs per code object, and the steps of one process (each guarded on its own modules and optimizer)
    would otherwise share the one of ``torch.func.grad``'s wrapper."""

    def call(*args):
        return fn(*args)

    call.__code__ = call.__code__.replace()
    return torch.compile(call, fullgraph=True, dynamic=False, options=_INDUCTOR_OPTIONS)


def _compile_failure(exc: Exception) -> str:
    return f"torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"


def _shape_key(inputs: tuple[torch.Tensor, ...]) -> tuple:
    return tuple((tuple(t.shape), t.dtype, t.stride()) for t in inputs)


def _first_mismatch(names, grads, eager_grads, rtol: float, reference=None) -> str | None:
    """What differs between compiled and eager gradients (None when they agree).

    Each tensor's difference may be ``rtol`` of its eager gradient's norm plus ``ZERO_GRADIENT`` of the whole
    gradient's: a gradient that is zero in exact arithmetic (the bias before a BatchNorm) is rounding noise in
    both, and noises do not agree. With ``reference`` (float64 gradients of the same step), a tensor beyond that
    still agrees if its distance from the reference is at most ``rtol`` of the reference's norm or
    ``COMPILE_CHECK_NOISE_FACTOR`` times eager's distance from it (plus the floor): as accurate as eager."""
    norms = [None if e is None else float(e.float().norm()) for e in eager_grads]
    floor = ZERO_GRADIENT * math.sqrt(sum(n * n for n in norms if n is not None))
    for i, (name, g, e, norm) in enumerate(zip(names, grads, eager_grads, norms)):
        if e is None:
            if g.any():
                return f"the compiled step gives {name} a gradient eager does not"
        elif float((g.float() - e.float()).norm()) > rtol * norm + floor and (
                reference is None or not _as_accurate(g, e, reference[i], rtol, floor)):
            return f"the compiled gradient of {name} differs from eager"
    return None


def _as_accurate(g: torch.Tensor, e: torch.Tensor, r: torch.Tensor, rtol: float, floor: float) -> bool:
    error, eager_error = float((g.double() - r).norm()), float((e.double() - r).norm())
    return error <= max(rtol * float(r.norm()), COMPILE_CHECK_NOISE_FACTOR * eager_error) + floor


def _check_rtol(device: torch.device) -> float:
    low = torch.is_autocast_enabled(device.type) and torch.get_autocast_dtype(device.type) in (
        torch.bfloat16, torch.float16)
    return COMPILE_CHECK_RTOL_AUTOCAST if low else COMPILE_CHECK_RTOL


def _rng_state(device: torch.device):
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(device: torch.device, state) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


class _CriticPhase(_Step):
    """One kind of critic update (the loss with or without the penalty, or the penalty alone), in one mode."""

    def __init__(self, owner: CriticStep, with_loss: bool, with_penalty: bool, weight: float):
        super().__init__(owner.critic, owner.optimizer, owner.requested_mode, owner.group)
        self.owner, self.with_loss, self.with_penalty, self.weight = owner, with_loss, with_penalty, weight
        self.spec = owner.spec if with_penalty else None

    # ----- eager -----

    def _objective(self, real, fake) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The eager objective with fastgan's fused ops, drawing this step's random numbers."""
        o = self.owner
        alpha, noise = _draws(self.spec, real, self.shard, self._noise_dtype)
        stats: dict[str, torch.Tensor] = {}
        total = None
        if self.with_loss:
            real_out, fake_out = _scores_of_both(o.critic, real, fake, o.joint_pass)
            total = terms_loss(real_out, o.terms[0], fake_out, o.terms[1])
            stats["wasserstein"] = real_out.detach().float().mean() - fake_out.detach().float().mean()
        if self.with_penalty:
            x = _penalty_points(self.spec, real, fake, alpha, noise, interpolated_points)
            x = x.detach().requires_grad_(True)  # a fresh leaf (R1's and R2's points are the inputs themselves)
            grads = input_gradients(o.critic, x, o.scaler)
            penalty, norms = norm_penalty(grads, self.spec.center, self.spec.one_sided, True)
            total = self.weight * penalty if total is None else total + self.weight * penalty
            stats.update(penalty=penalty.detach(), grad_norm_mean=norms.mean(), grad_norm_max=norms.max())
        stats["loss"] = total.detach()
        return total, stats

    def _backward(self, total: torch.Tensor) -> None:
        scaler = self.owner.scaler
        super()._backward(scaler.scale(total) if scaler is not None else total)

    def _optimizer_step(self) -> None:
        scaler = self.owner.scaler
        if scaler is None:
            return super()._optimizer_step()
        scaler.step(self.optimizer)
        scaler.update()

    def _after_update(self) -> None:
        if self.owner.clip_value is not None:
            clip_weights_(self.owner.critic, self.owner.clip_value)

    def _scales_losses(self) -> bool:
        """Whether an enabled fp16 GradScaler scales this step's loss."""
        return self.owner.scaler is not None and self.owner.scaler.is_enabled()

    def _graph_impossible(self) -> str | None:
        if self._scales_losses():
            # GradScaler.step reads whether any gradient overflowed with .item(): a sync a capture refuses.
            return "a GradScaler's step reads on the host whether gradients overflowed"
        return super()._graph_impossible()

    # ----- compiled -----

    def _compile_impossible(self) -> str | None:
        if self._scales_losses():
            return "a GradScaler is used; compile supports bf16 autocast, not fp16 loss scaling"
        if self.with_penalty and _has_batch_statistics(self.owner.critic):
            return "the critic has BatchNorm in training mode, whose batch statistics a penalty cannot trace"
        return None

    def _functional_objective(self, params, buffers, real, fake, alpha, noise):
        """The eager objective in plain PyTorch and torch.func."""
        o = self.owner

        def scores(x):
            return torch.func.functional_call(o.critic, (params, buffers), (x,))

        stats: dict[str, torch.Tensor] = {}
        total = None
        if self.with_penalty:
            x = _penalty_points(self.spec, real, fake, alpha, noise, _interpolation_fwd_torch)
            grads = torch.func.grad(lambda x: scores(x).sum())(x)
            penalty, norms = _penalty_fwd_torch(grads, self.spec.center, self.spec.one_sided)
            total = self.weight * penalty
            stats.update(penalty=penalty.detach(), grad_norm_mean=norms.detach().mean(),
                         grad_norm_max=norms.detach().max())
        if self.with_loss:
            real_out, fake_out = _scores_of_both(scores, real, fake, o.joint_pass)
            loss = terms_loss(real_out, o.terms[0], fake_out, o.terms[1], fused=False)
            total = loss if total is None else loss + total
            stats["wasserstein"] = real_out.detach().float().mean() - fake_out.detach().float().mean()
        stats["loss"] = total.detach()
        return total, stats

    def _traced_inputs(self, inputs) -> tuple:
        real, fake = inputs
        return (real, fake, *_draws(self.spec, real, self.shard, self._noise_dtype))

    def _float64_twin(self) -> _CriticPhase:
        twin = copy.copy(self)
        twin.owner = copy.copy(self.owner)
        twin.owner.critic = twin.module = _float64_copy(self.owner.critic)
        twin.owner.scaler = None
        twin._state = _StateCache(twin.module)
        return twin


class _StateCache:
    """A module's named tensors, looked up once: walking the module tree costs more than a small step's
    kernels. Call :meth:`refresh` if parameters are replaced or frozen (the step does on each new shape)."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.refresh()

    def refresh(self) -> None:
        self.trained = [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]
        others = {**dict(self.module.named_buffers()),
                  **{n: p for n, p in self.module.named_parameters() if not p.requires_grad}}
        # Detached views share their tensors' storage, so in-place updates (the optimizer's) show through.
        self._split = ({n: p.detach() for n, p in self.trained}, {n: t.detach() for n, t in others.items()})

    def split(self) -> tuple[dict, dict]:
        """The trained parameters and the other tensors (buffers, frozen parameters) by name, detached."""
        return self._split


class CriticStep:
    """One whole critic (discriminator) step per call: ``stats = step(real, fake)``.

    Args:
        critic: module mapping (B, ...) samples to (B,) or (B, 1) scores.
        optimizer: the critic's optimizer (for ``mode="graph"`` one with a ``capturable`` option, e.g. Adam).
        loss: ``"wgan"``, ``"lsgan"``, ``"ns"`` or ``"hinge"`` (the critic side of :mod:`fastgan.losses`), or
            None for penalty-only steps.
        penalty: None, ``"gp"``, ``"lp"``, ``"zero-centred"``, ``"r1"``, ``"r2"`` or ``"dragan"`` (see
            :mod:`fastgan.penalties`).
        penalty_weight: lambda (GP, LP, DRAGAN) or gamma / 2 (R1, R2).
        clip_value: clamp the critic's parameters to [-c, c] after each update (WGAN), or None.
        lazy_every: apply the penalty every k-th call only, as its own penalty-only update with weight
            ``penalty_weight * k`` after the loss update (StyleGAN2's lazy regularization); 1 puts the penalty
            into every update.
        mode: ``"auto"``, ``"eager"``, ``"compile"`` or ``"graph"`` (see the module docstring).
        scaler: a ``torch.amp.GradScaler`` for fp16 autocast (eager mode: compile falls back to eager with it,
            ``mode="graph"`` refuses it, ``auto`` runs eager).
        lsgan_targets: LSGAN's (a, b, c).
        joint_pass: score real and fake in one critic pass over both batches (concatenated) when the critic
            has no batch statistics (no BatchNorm in training mode); False keeps two passes, e.g. for a critic
            with dropout whose random masks must match two separate calls.
        process_group: with several processes (``torch.distributed``), the group whose ranks train this
            critic together: each update's gradients are averaged over its ranks (one flat all-reduce), and
            alpha and noise are drawn for the global batch and sliced, so N processes with B rows each train
            the model one process trains with N * B rows. A ``DistributedDataParallel`` critic is unwrapped
            and its group used. Not with ``mode="graph"``.

    A call returns a dict of detached 0-dim tensors on the device, read without a host sync: ``loss`` (the
    loss update's objective, penalty included when it is in it), with a loss ``wasserstein`` (mean real score
    minus mean fake score), and on calls that apply the penalty ``penalty`` (unweighted), ``grad_norm_mean``
    and ``grad_norm_max`` (of the per-sample input-gradient norms).
    """

    def __init__(self, critic: nn.Module, optimizer: torch.optim.Optimizer, *, loss: str | None,
                 penalty: str | None = None, penalty_weight: float = 10.0, clip_value: float | None = None,
                 lazy_every: int = 1, mode: str = "auto", scaler: torch.amp.GradScaler | None = None,
                 lsgan_targets: tuple[float, float, float] = (0.0, 1.0, 1.0), joint_pass: bool = False,
                 process_group: torch.distributed.ProcessGroup | None = None):
        if loss is None and penalty is None:
            raise ValueError("loss and penalty cannot both be None")
        if loss is not None and loss not in LOSS_NAMES:
            raise ValueError(f"loss must be one of {LOSS_NAMES} or None, got {loss!r}")
        if penalty is not None and penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {tuple(PENALTIES)} or None, got {penalty!r}")
        if isinstance(lazy_every, bool) or not isinstance(lazy_every, int) or lazy_every < 1:
            raise ValueError(f"lazy_every must be a positive int, got {lazy_every!r}")
        if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
            raise TypeError(f"scaler must be a torch.amp.GradScaler or None, got {type(scaler).__name__}")
        critic, self.group = distributed.unwrap(critic, process_group)
        self.critic, self.optimizer, self.requested_mode = critic, optimizer, _check_mode(mode)
        self.terms = loss_terms(loss, lsgan_targets)[:2] if loss is not None else None
        self.spec = PENALTIES[penalty] if penalty is not None else None
        weight = _checks.finite_real("penalty_weight", penalty_weight)
        self.clip_value = None if clip_value is None else _checks.positive_real("clip_value", clip_value)
        self.scaler = scaler
        # One critic pass over real and fake together, unless samples interact (batch statistics) or the caller
        # asks for separate passes.
        self.joint_pass = joint_pass and not _has_batch_statistics(critic)
        self.lazy_every = lazy_every if penalty is not None else 1
        lazy = self.lazy_every > 1
        self._main = _CriticPhase(self, True, penalty is not None and not lazy, weight) if loss is not None else None
        self._penalty = None
        if penalty is not None and (lazy or loss is None):
            self._penalty = _CriticPhase(self, False, True, weight * self.lazy_every)
        self.calls = 0

    @property
    def mode(self) -> str | None:
        """The mode in use (None before the first call): ``requested_mode`` resolved, or eager after a fallback."""
        return (self._main or self._penalty).mode

    def __call__(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """One critic step on a batch of real and generated samples of one shape, dtype and device."""
        check_pair(real, fake)
        real, fake = real.detach(), fake.detach()
        stats: dict[str, torch.Tensor] = {}
        if self._main is not None:
            stats = self._main._run((real, fake))
        if self._penalty is not None and self.calls % self.lazy_every == 0:
            # The penalty update's statistics, with the loss update's loss and Wasserstein estimate.
            stats = {**self._penalty._run((real, fake)), **stats}
        self.calls += 1
        return stats


class GeneratorStep(_Step):
    """One whole generator step per call: ``stats = step(noise)``.

    Args:
        generator: module mapping (B, ...) noise to samples.
        critic: the critic scoring them (not updated here; its parameters get no gradient).
        optimizer: the generator's optimizer.
        loss: ``"wgan"``, ``"lsgan"``, ``"ns"`` or ``"hinge"`` (the generator side of :mod:`fastgan.losses`).
        ema: decay of an exponential moving average of the generator, kept in ``self.ema`` and updated after
            every step (with a warm-up: the decay is ``min(ema, (1 + t) / (10 + t))`` at step t), or None.
        mode: as for :class:`CriticStep`.
        lsgan_targets: LSGAN's (a, b, c).
        process_group: as for :class:`CriticStep` (the gradients are averaged over its ranks; a
            ``DistributedDataParallel`` generator or critic is unwrapped, the generator's group used).

    Returns (from a call): ``{"loss": ...}``, a detached 0-dim tensor.
    """

    def __init__(self, generator: nn.Module, critic: nn.Module, optimizer: torch.optim.Optimizer, *, loss: str,
                 ema: float | None = None, mode: str = "auto",
                 lsgan_targets: tuple[float, float, float] = (0.0, 1.0, 1.0),
                 process_group: torch.distributed.ProcessGroup | None = None):
        generator, group = distributed.unwrap(generator, process_group)
        super().__init__(generator, optimizer, mode, group)
        critic = distributed.unwrap(critic)[0]
        if not isinstance(critic, nn.Module):
            raise TypeError(f"critic must be an nn.Module, got {type(critic).__name__}")
        if loss not in LOSS_NAMES:
            raise ValueError(f"loss must be one of {LOSS_NAMES}, got {loss!r}")
        if ema is not None and not 0.0 <= _checks.finite_real("ema", ema) < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema}")
        self.generator, self.critic = generator, critic
        self.term = loss_terms(loss, lsgan_targets)[2]
        self.decay = ema
        self.ema = copy.deepcopy(generator).requires_grad_(False) if ema is not None else None
        # The EMA weight of this step, on the device: filled before each call, so that a captured graph reads
        # the current value instead of baking in the first one.
        self._ema_weight = None
        self.calls = 0

    def __call__(self, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        """One generator step from a batch of noise (B, ...)."""
        _checks.batched("noise", _checks.float_tensor("noise", noise))
        if self.ema is not None:
            if self._ema_weight is None:
                self._ema_weight = torch.zeros((), device=noise.device, dtype=next(self.ema.parameters()).dtype)
            # Warm-up (as in many EMA implementations): early on the average follows the generator closely.
            self._ema_weight.fill_(1.0 - min(self.decay, (1 + self.calls) / (10 + self.calls)))
        stats = self._run((noise,))
        self.calls += 1
        return stats

    def _objective(self, noise) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with self._frozen_critic():
            loss = terms_loss(self.critic(self.generator(noise)), self.term)
        return loss, {"loss": loss.detach()}

    @contextlib.contextmanager
    def _frozen_critic(self) -> Iterator[None]:
        """The critic's parameters out of autograd's (and Dynamo's) view: they are not trained here."""
        self.critic.requires_grad_(False)
        try:
            yield
        finally:
            self.critic.requires_grad_(True)

    def _after_update(self) -> None:
        if self.ema is None:
            return
        with torch.no_grad():
            averaged = list(self.ema.parameters())
            # One weight tensor per parameter (the List overload): a lone tensor would be read as a Python scalar,
            # a host sync per step that a CUDA graph capture refuses.
            torch._foreach_lerp_(averaged, list(self.generator.parameters()), [self._ema_weight] * len(averaged))
            for ema_buffer, buffer in zip(self.ema.buffers(), self.generator.buffers()):
                ema_buffer.copy_(buffer)

    def _functional_objective(self, params, buffers, noise):
        fake = torch.func.functional_call(self.generator, (params, buffers), (noise,))
        loss = terms_loss(self.critic(fake), self.term, fused=False)
        return loss, {"loss": loss.detach()}

    def _float64_twin(self) -> GeneratorStep:
        twin = copy.copy(self)
        twin.generator = twin.module = _float64_copy(self.generator)
        twin.critic = _float64_copy(self.critic)
        twin._state = _StateCache(twin.module)
        return twin

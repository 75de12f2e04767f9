"""What a step computes: the objective of a critic update and of a generator update, in two forms that must
agree, eager (fastgan's fused ops and autograd) and functional (plain PyTorch and ``torch.func``, which
``torch.compile`` traces whole).

Both forms call the modules in the same order, so that modules with state advanced by each call (spectral
norm's power iteration, BatchNorm's statistics) and random draws inside them (dropout's masks) go the same way:
the critic's loss (real batch, then fake batch, or one call over both), then its penalty; the generator, then
the critic. The step's own random numbers (alpha, DRAGAN's noise) are drawn first, in that order, from the
default generators.

A conditional critic is called ``critic(x, y)`` with the labels of the samples it scores; the penalty points
get the labels of the real samples they are made from (the fake ones' for R2), StudioGAN's convention.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from .. import _input_checks, distributed
from ..amp import input_gradients
from ..backend import uses_triton
from ..clipping import clip_weights_
from ..interpolation import _interpolation_fwd_torch, interpolated_points
from ..kernels.loss_terms import Term
from ..losses import loss_of_terms
from ..penalties import PenaltyKind, has_batch_statistics, penalty_points, point_labels
from ..norm_penalty import _penalty_fwd_torch, norm_penalty
from .precision import networks
from .state import ModuleState, copy_module


def draws(kind: PenaltyKind | None, real: torch.Tensor, shard: distributed.Shard
          ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A critic update's random numbers, in a fixed order: alpha (B,), then DRAGAN's noise (real's shape, drawn
    in fp32 and rounded to real's dtype, so that a float64 run draws what an fp32 run does); drawn for the
    global batch and sliced to this rank's rows, so that they do not depend on the number of processes."""
    if kind is None:
        return None, None
    rows = real.shape[0] * shard.world_size
    alpha = shard.rows(torch.rand(rows, device=real.device)) if kind.draws_alpha else None
    noise = None
    if kind.draws_noise:
        noise = shard.rows(torch.rand((rows, *real.shape[1:]), device=real.device).to(real.dtype))
    return alpha, noise


def forward(critic: Callable, x: torch.Tensor, y: torch.Tensor | None, precision: str) -> torch.Tensor:
    """``critic(x)`` or ``critic(x, y)`` in ``precision`` (:mod:`fastgan.steps.precision`); fp32 outputs from a
    bf16 critic, so that the losses are fp32."""
    with networks(precision, x.device.type):
        out = critic(x) if y is None else critic(x, y)
    return out.float() if precision == "bf16" else out


def scores(critic: Callable, x: torch.Tensor, y: torch.Tensor | None, module: torch.nn.Module,
           precision: str = "fp32") -> torch.Tensor:
    """:func:`forward`, checked to be one score per sample (per group of ``module.pack``)."""
    return _input_checks.critic_scores(forward(critic, x, y, precision), x.shape[0], module)


def scores_of_both(critic: Callable, real, fake, labels, fake_labels, joint: bool, module: torch.nn.Module,
                   precision: str):
    """The critic's scores of real and fake, in one pass over both batches when ``joint`` (half the launches
    and larger matrix products; only for critics whose samples do not interact)."""
    if not joint:
        return scores(critic, real, labels, module, precision), scores(critic, fake, fake_labels, module, precision)
    y = None if labels is None else torch.cat([labels, fake_labels])
    both = scores(critic, torch.cat([real, fake]), y, module, precision)
    split = both.shape[0] * real.shape[0] // (real.shape[0] + fake.shape[0])
    return both[:split], both[split:]


class CriticObjective:
    """One kind of critic update: its loss (``terms``: the critic's terms on real and fake scores, or None) plus
    ``weight`` times its penalty (``kind``, or None), then clipping of the trained parameters to
    ``[-clip_value, clip_value]`` when given. ``scaler``: a GradScaler for fp16 autocast, or None. ``precision``:
    the critic's (:mod:`fastgan.steps.precision`)."""

    def __init__(self, state: ModuleState, terms: tuple[Term, Term] | None, kind: PenaltyKind | None,
                 weight: float, joint: bool, scaler: torch.amp.GradScaler | None, clip_value: float | None,
                 shard: distributed.Shard, precision: str = "fp32"):
        self.state, self.aux = state, None
        self.terms, self.kind, self.weight, self.joint = terms, kind, weight, joint
        self.scaler, self.clip_value, self.shard, self.precision = scaler, clip_value, shard, precision

    def eager(self, real, fake, labels, fake_labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective to minimise with fastgan's fused ops, and its detached statistics."""
        critic = self.state.module
        alpha, noise = draws(self.kind, real, self.shard)
        fused = uses_triton(real.device)  # asked once a step, for the three fused ops
        stats: dict[str, torch.Tensor] = {}
        total = None
        if self.terms is not None:
            real_out, fake_out = scores_of_both(critic, real, fake, labels, fake_labels, self.joint, critic,
                                                self.precision)
            total = loss_of_terms(real_out, self.terms[0], fake_out, self.terms[1], fused=fused)
            stats["wasserstein"] = real_out.detach().float().mean() - fake_out.detach().float().mean()
        if self.kind is not None:
            x = penalty_points(self.kind, real, fake, alpha, noise,
                               lambda a, b, w: interpolated_points(a, b, w, fused))
            x = x.detach().requires_grad_(True)  # a fresh leaf (R1's and R2's points are the inputs themselves)
            y = point_labels(self.kind, labels, fake_labels)
            # input_gradients checks the scores itself (once).
            grads = input_gradients(lambda x: forward(critic, x, y, self.precision), x, self.scaler, critic)
            penalty, norms = norm_penalty(grads, self.kind.center, self.kind.one_sided, True, fused)
            total = self.weight * penalty if total is None else total + self.weight * penalty
            stats.update(penalty=penalty.detach(), grad_norm_mean=norms.mean(), grad_norm_max=norms.max())
        stats["loss"] = total.detach()
        return total, stats

    def functional(self, params, others, aux, real, fake, labels, fake_labels, alpha, noise):
        """:meth:`eager` in plain PyTorch and torch.func, the critic's tensors given by name."""
        del aux  # a critic update calls the critic alone

        def critic(x, y=None):
            return self.state.functional_call((params, others), *((x,) if y is None else (x, y)))

        stats: dict[str, torch.Tensor] = {}
        total = None
        if self.terms is not None:
            real_out, fake_out = scores_of_both(critic, real, fake, labels, fake_labels, self.joint,
                                                 self.state.module, self.precision)
            total = loss_of_terms(real_out, self.terms[0], fake_out, self.terms[1], fused=False)
            stats["wasserstein"] = real_out.detach().float().mean() - fake_out.detach().float().mean()
        if self.kind is not None:
            x = penalty_points(self.kind, real, fake, alpha, noise, _interpolation_fwd_torch)
            y = point_labels(self.kind, labels, fake_labels)
            grads = torch.func.grad(lambda x: scores(critic, x, y, self.state.module, self.precision).sum())(x)
            penalty, norms = _penalty_fwd_torch(grads, self.kind.center, self.kind.one_sided)
            total = self.weight * penalty if total is None else total + self.weight * penalty
            stats.update(penalty=penalty.detach(), grad_norm_mean=norms.detach().mean(),
                         grad_norm_max=norms.detach().max())
        stats["loss"] = total.detach()
        return total, stats

    def traced_inputs(self, inputs: tuple) -> tuple:
        """What :meth:`functional` takes after the tensors: the inputs, then the draws."""
        return (*inputs, *draws(self.kind, inputs[0], self.shard))

    def scaled(self, total: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(total) if self.scaler is not None else total

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def after_update(self) -> None:
        if self.clip_value is not None:
            clip_weights_(self.state.params, self.clip_value)

    def scales_losses(self) -> bool:
        """Whether an enabled fp16 GradScaler scales this update's loss."""
        return self.scaler is not None and self.scaler.is_enabled()

    def compile_impossible(self) -> str | None:
        if self.scales_losses():
            return "a GradScaler is used; compile supports bf16 autocast, not fp16 loss scaling"
        if self.kind is not None and has_batch_statistics(self.state.module):
            return "the critic has BatchNorm in training mode, whose batch statistics a penalty cannot trace"
        return None

    def graph_impossible(self) -> str | None:
        if self.scales_losses():
            # GradScaler.step reads whether any gradient overflowed with .item(): a sync a capture refuses.
            return "a GradScaler's step reads on the host whether gradients overflowed"
        return None

    def float64(self) -> CriticObjective:
        """This objective on a float64 copy of the critic (to compute gradients, not to train), without a
        scaler."""
        twin = copy.copy(self)
        twin.state = ModuleState(copy_module(self.state.module, torch.float64), self.state.role)
        twin.scaler, twin.precision = None, "fp32"
        return twin


class GeneratorObjective:
    """A generator update: ``term`` of the critic's scores of the generated batch. The critic (``aux``) is
    called, not trained: its tensors get no gradient. ``ema``: the moving average of the generator, updated
    after each update with the weight in the 0-dim device tensor ``ema_weight``, or None. ``precision``: both
    networks' (:mod:`fastgan.steps.precision`)."""

    def __init__(self, state: ModuleState, aux: ModuleState, term: Term, ema: torch.nn.Module | None,
                 precision: str = "fp32"):
        self.state, self.aux, self.term, self.ema, self.precision = state, aux, term, ema, precision
        # Filled before each call, so that a captured graph reads the current value instead of baking in the first.
        self.ema_weight: torch.Tensor | None = None

    def eager(self, noise, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        generator, critic = self.state.module, self.aux.module
        with networks(self.precision, noise.device.type):
            fake = generator(noise) if labels is None else generator(noise, labels)
        loss = loss_of_terms(scores(critic, fake, labels, critic, self.precision), self.term)
        return loss, {"loss": loss.detach()}

    def functional(self, params, others, aux, noise, labels):
        conditioning = () if labels is None else (labels,)
        with networks(self.precision, noise.device.type):
            fake = self.state.functional_call((params, others), noise, *conditioning)
        critic_tensors = ({}, aux)
        critic = self.aux.functional_call
        loss = loss_of_terms(scores(lambda x, *y: critic(critic_tensors, x, *y), fake, labels, self.aux.module,
                                    self.precision), self.term, fused=False)
        return loss, {"loss": loss.detach()}

    def traced_inputs(self, inputs: tuple) -> tuple:
        return inputs

    def scaled(self, total: torch.Tensor) -> torch.Tensor:
        return total

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.step()

    def after_update(self) -> None:
        if self.ema is None:
            return
        with torch.no_grad():
            averaged = list(self.ema.parameters())
            # One weight tensor per parameter (the List overload): a lone tensor would be read as a Python scalar,
            # a host sync per step that a CUDA graph capture refuses.
            torch._foreach_lerp_(averaged, list(self.state.module.parameters()), [self.ema_weight] * len(averaged))
            for ema_buffer, buffer in zip(self.ema.buffers(), self.state.module.buffers()):
                ema_buffer.copy_(buffer)

    def compile_impossible(self) -> str | None:
        return None

    def graph_impossible(self) -> str | None:
        return None

    def float64(self) -> GeneratorObjective:
        twin = copy.copy(self)
        twin.state = ModuleState(copy_module(self.state.module, torch.float64), self.state.role)
        twin.aux = ModuleState(copy_module(self.aux.module, torch.float64), self.aux.role)
        twin.precision = "fp32"
        return twin

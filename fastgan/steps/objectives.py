"""What a step computes: the objective of a critic update and of a generator update, each written once and run
in two forms, eager (fastgan's fused ops and autograd) and functional (plain PyTorch and ``torch.func``, which
``torch.compile`` traces whole); the forms differ only in the ops they are given (:class:`Ops`).

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
from functools import partial
from typing import Any, Protocol

import torch

from .. import _input_checks, distributed
from ..amp import input_gradients
from ..augment import Augment, Policy, augment_torch, augmented
from ..backend import uses_triton
from ..clipping import clip_weights_
from ..losses import LossTerms, critic_loss, generator_loss
from ..norm_penalty import norm_penalty, penalty_fwd_torch
from ..penalties import (
    APPROXIMATION_SIGMA,
    PenaltyKind,
    finite_difference,
    has_batch_statistics,
    penalty_points,
    perturbed,
    point_labels,
)
from ..regularizers import LeCam
from .precision import networks, weights_cast_once
from .state import ModuleState, copy_module
from .types import Fn, Inputs, Stats, Tensors


def draws(
    kind: PenaltyKind | None, real: torch.Tensor, shard: distributed.Shard
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A critic update's random numbers for its penalty, in a fixed order: alpha (B,), then the noise of the
    samples' shape (DRAGAN's uniform on [0, 1), the approximate penalties' standard normal), drawn in fp32 and
    rounded to real's dtype, so that a float64 run draws what an fp32 run does; drawn for the global batch and
    sliced to this rank's rows, so that they do not depend on the number of processes."""
    if kind is None:
        return None, None
    rows = real.shape[0] * shard.world_size
    alpha = shard.rows(torch.rand(rows, device=real.device)) if kind.draws_alpha else None
    noise = None
    if kind.draws_noise:
        draw = torch.randn if kind.approximate else torch.rand
        noise = shard.rows(draw((rows, *real.shape[1:]), device=real.device).to(real.dtype))
    return alpha, noise


def augmentation_draws(augment: Augment | None, shard: distributed.Shard, *batches: torch.Tensor) -> list[Any]:
    """Each batch's augmentation parameters (:meth:`fastgan.Augment.params`), drawn in the order given (before
    the penalty's draws) for the global batch and sliced to this rank's rows; Nones without augmentation."""
    if augment is None:
        return [None] * len(batches)
    return [shard.rows(augment.params(x, x.shape[0] * shard.world_size)) for x in batches]


def forward(critic: Fn, x: torch.Tensor, y: torch.Tensor | None, precision: str) -> torch.Tensor:
    """``critic(x)`` or ``critic(x, y)`` in ``precision`` (:mod:`fastgan.steps.precision`); fp32 outputs from a
    bf16 critic, so that the losses are fp32."""
    with networks(precision, x.device.type):
        out: torch.Tensor = critic(x) if y is None else critic(x, y)
    return out.float() if precision == "bf16" else out


def _forward_at(critic: Fn, y: torch.Tensor | None, precision: str, x: torch.Tensor) -> torch.Tensor:
    """:func:`forward` with the labels and precision bound first (the input gradient's function of x)."""
    return forward(critic, x, y, precision)


def _through(augment: Callable[[torch.Tensor], torch.Tensor], critic: Fn, x: torch.Tensor, *y: torch.Tensor) -> Any:
    """The critic of the augmented samples: a penalty's points stay un-augmented, its gradient goes through."""
    return critic(augment(x), *y)


def scores(
    critic: Fn, x: torch.Tensor, y: torch.Tensor | None, module: torch.nn.Module, precision: str = "fp32"
) -> torch.Tensor:
    """:func:`forward`, checked to be one score per sample (per group of ``module.pack``)."""
    return _input_checks.critic_scores(forward(critic, x, y, precision), x.shape[0], module)


def scores_of_both(
    critic: Fn,
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None,
    fake_labels: torch.Tensor | None,
    joint: bool,
    module: torch.nn.Module,
    precision: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The critic's scores of real and fake, in one pass over both batches when ``joint`` (half the launches
    and larger matrix products; only for critics whose samples do not interact)."""
    if not joint:
        return scores(critic, real, labels, module, precision), scores(critic, fake, fake_labels, module, precision)
    y = None if labels is None or fake_labels is None else torch.cat([labels, fake_labels])
    both = scores(critic, torch.cat([real, fake]), y, module, precision)
    split = both.shape[0] * real.shape[0] // (real.shape[0] + fake.shape[0])
    return both[:split], both[split:]


class Ops:
    """The ops an objective's eager form runs: fastgan's fused ops (the Triton kernels where ``fused``) and
    autograd's input gradient (``create_graph=True``; PyTorch's AMP recipe under an enabled ``scaler``)."""

    def __init__(self, fused: bool, scaler: torch.amp.GradScaler | None = None):
        self.fused, self.scaler = fused, scaler

    def input_gradients(
        self, critic: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, module: torch.nn.Module
    ) -> torch.Tensor:
        """``d sum(critic(x)) / d x``, its scores checked to be one per sample (per group of ``module.pack``)."""
        x = x.detach().requires_grad_(True)  # a fresh leaf (R1's and R2's points are the inputs themselves)
        return input_gradients(critic, x, self.scaler, module)

    def penalty(self, grads: torch.Tensor, kind: PenaltyKind) -> tuple[torch.Tensor, torch.Tensor]:
        """``kind``'s penalty of the input gradients (B, ...), and the (B,) norms."""
        penalty, norms = norm_penalty(grads, kind.center, kind.one_sided, True, self.fused)
        return penalty, norms

    def augment(self, x: torch.Tensor, params: torch.Tensor | None, policy: Policy | None) -> torch.Tensor:
        """``x`` augmented by ``params`` under ``policy`` (:func:`fastgan.augment`), or ``x`` where ``params`` is
        None."""
        if params is None or policy is None:
            return x
        return augmented(x, params, policy, self.fused)


class TracedOps(Ops):
    """The ops an objective's functional form runs: plain PyTorch, differentiated by ``torch.func``."""

    def __init__(self) -> None:
        super().__init__(fused=False)

    def input_gradients(
        self, critic: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, module: torch.nn.Module
    ) -> torch.Tensor:
        grads: torch.Tensor = torch.func.grad(
            lambda x: _input_checks.critic_scores(critic(x), x.shape[0], module).sum()
        )(x)
        return grads

    def penalty(self, grads: torch.Tensor, kind: PenaltyKind) -> tuple[torch.Tensor, torch.Tensor]:
        return penalty_fwd_torch(grads, kind.center, kind.one_sided)

    def augment(self, x: torch.Tensor, params: torch.Tensor | None, policy: Policy | None) -> torch.Tensor:
        return x if params is None or policy is None else augment_torch(x, params, policy)


TRACED = TracedOps()


class Objective(Protocol):
    """What a runner needs of an objective (:class:`CriticObjective`, :class:`GeneratorObjective`)."""

    @property
    def state(self) -> ModuleState: ...  # the trained module

    @property
    def aux(self) -> ModuleState | None: ...  # a module called but not trained

    @property
    def precision(self) -> str: ...

    # The objective's eager form (its inputs) and functional form (the tensors, then the traced inputs).
    @property
    def eager(self) -> Callable[..., tuple[torch.Tensor, Stats]]: ...

    @property
    def functional(self) -> Callable[..., tuple[torch.Tensor, Stats]]: ...

    def traced_inputs(self, inputs: Inputs) -> Inputs: ...

    def scaled(self, total: torch.Tensor) -> torch.Tensor: ...

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None: ...

    def after_update(self) -> None: ...

    def compile_impossible(self) -> str | None: ...

    def graph_impossible(self) -> str | None: ...

    def float64(self) -> Objective: ...


class CriticObjective:
    """One kind of critic update: its loss (``terms``: the critic's side of them, or None) plus ``weight`` times
    its penalty (``kind``, or None; an approximate one perturbs by ``sigma`` times its noise), then clipping of
    the trained parameters to ``[-clip_value, clip_value]`` when given. ``scaler``: a GradScaler for fp16
    autocast, or None. ``precision``: the critic's (:mod:`fastgan.steps.precision`). ``augment``: the critic
    sees real and fake augmented, each batch by its own parameters; a penalty's points are made of the
    un-augmented samples and the critic's gradient there goes through the augmentation of the batch they come
    from (the real one's; R2's: the fake one's). ``lecam``, ``bcr`` ((lambda_real, lambda_fake) and the policy of
    its augmentation) and ``zcr`` (lambda_dis, for samples generated from moved latents given with the batch):
    the loss update's regularizers (:mod:`fastgan.regularizers`)."""

    def __init__(
        self,
        state: ModuleState,
        terms: LossTerms | None,
        kind: PenaltyKind | None,
        weight: float,
        joint: bool,
        scaler: torch.amp.GradScaler | None,
        clip_value: float | None,
        shard: distributed.Shard,
        precision: str = "fp32",
        sigma: float = APPROXIMATION_SIGMA,
        augment: Augment | None = None,
        lecam: LeCam | None = None,
        bcr: tuple[tuple[float, float], Policy] | None = None,
        zcr: float = 0.0,
    ):
        self.state: ModuleState = state
        self.aux: ModuleState | None = None
        self.terms, self.kind, self.weight, self.joint = terms, kind, weight, joint
        self.scaler, self.clip_value, self.shard, self.precision = scaler, clip_value, shard, precision
        self.sigma, self.augment = sigma, augment
        self.lecam, self.bcr, self.zcr = lecam, bcr, zcr
        self.bcr_augment = Augment(bcr[1]) if bcr is not None and terms is not None else None

    def objective(
        self,
        critic: Fn,
        ops: Ops,
        real: torch.Tensor,
        fake: torch.Tensor,
        labels: torch.Tensor | None,
        fake_labels: torch.Tensor | None,
        fake_moved: torch.Tensor | None,
        real_params: torch.Tensor | None,
        fake_params: torch.Tensor | None,
        consistent_real: torch.Tensor | None,
        consistent_fake: torch.Tensor | None,
        lecam_ema: torch.Tensor | None,
        alpha: torch.Tensor | None,
        noise: torch.Tensor | None,
    ) -> tuple[torch.Tensor, Stats]:
        """The objective to minimise, and its detached statistics: the one definition both forms run, with the
        critic (``critic(x)`` or ``critic(x, y)``), the ops, the inputs (``fake_moved``: zCR's samples) and what
        :meth:`extra_inputs` gives (each batch's augmentation and bCR parameters, LeCam's averages, the
        penalty's draws; None where unused)."""
        stats: Stats = {}
        total = None
        policy = self.augment.policy if self.augment is not None else None
        if self.terms is not None:
            module = self.state.module
            real_out, fake_out = scores_of_both(
                critic,
                ops.augment(real, real_params, policy),
                ops.augment(fake, fake_params, policy),
                labels,
                fake_labels,
                self.joint,
                module,
                self.precision,
            )
            total = critic_loss(self.terms, real_out, fake_out, ops.fused)
            stats["wasserstein"] = real_out.detach().float().mean() - fake_out.detach().float().mean()
            if self.augment is not None and self.augment.adaptive:
                stats["real_sign"] = torch.sign(real_out.detach().float()).mean()  # ADA's r_t
            if self.lecam is not None:
                assert lecam_ema is not None  # an input of every LeCam update
                lecam, moved = self.lecam.term(real_out, fake_out, lecam_ema)
                total = total + self.lecam.weight * lecam
                stats.update(lecam=lecam.detach(), lecam_ema_real=moved[0], lecam_ema_fake=moved[1])
            if self.bcr is not None:
                # The scores of the batches the loss scored against the scores of their bCR augmentations.
                (real_weight, fake_weight), bcr_policy = self.bcr
                again = [
                    scores(critic, ops.augment(x, params, bcr_policy), y, module, self.precision)
                    for x, params, y in ((real, consistent_real, labels), (fake, consistent_fake, fake_labels))
                ]
                consistency = real_weight * finite_difference(real_out, again[0], ops.fused) + fake_weight * (
                    finite_difference(fake_out, again[1], ops.fused)
                )
                total = total + consistency
                stats["consistency"] = consistency.detach()
            if self.zcr:
                assert fake_moved is not None  # CriticStep refuses a zCR call without it
                moved_out = scores(critic, fake_moved, fake_labels, module, self.precision)
                latent = finite_difference(fake_out, moved_out, ops.fused)
                total = total + self.zcr * latent
                stats["latent_consistency"] = latent.detach()
        if self.kind is not None:
            # Where the penalty looks at the critic: each part's points with their labels (R1 + R2: two parts), and
            # the critic there (through the augmentation of the batch the points come from).
            both_labels, both_params = (labels, fake_labels), (real_params, fake_params)
            sites = []
            for part in self.kind.parts:
                params = point_labels(part, *both_params)
                at = (
                    critic
                    if params is None
                    else partial(_through, partial(ops.augment, params=params, policy=policy), critic)
                )
                sites.append(
                    (
                        part,
                        penalty_points(part, real, fake, alpha, noise, ops.fused),
                        point_labels(part, *both_labels),
                        at,
                    )
                )
            if self.kind.approximate:
                # The finite difference: the critic at the points, then at the points moved along the noise.
                ((_, x, y, at),) = sites
                assert noise is not None  # drawn for every approximate penalty
                module = self.state.module
                at_points = scores(at, x, y, module, self.precision)
                moved = scores(at, perturbed(x, noise, self.sigma), y, module, self.precision)
                penalty = finite_difference(at_points, moved, ops.fused)
                stats["penalty"] = penalty.detach()
            else:
                penalty, norms = self.gradient_penalty(ops, sites)
                stats.update(penalty=penalty.detach(), grad_norm_mean=norms.mean(), grad_norm_max=norms.max())
            total = self.weight * penalty if total is None else total + self.weight * penalty
        assert total is not None  # a loss, a penalty or both
        stats["loss"] = total.detach()
        return total, stats

    def gradient_penalty(
        self, ops: Ops, sites: list[tuple[PenaltyKind, torch.Tensor, torch.Tensor | None, Fn]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The unweighted penalty of the critic's input gradients at each site (a part of the kind, its points,
        their labels and the critic there; R1 + R2: the real samples, then the fake ones, their penalties added),
        and the detached per-sample norms of all."""
        penalty: torch.Tensor | None = None
        norms = []
        for part, x, y, critic in sites:
            grads = ops.input_gradients(partial(_forward_at, critic, y, self.precision), x, self.state.module)
            value, part_norms = ops.penalty(grads, part)
            penalty = value if penalty is None else penalty + value
            norms.append(part_norms.detach())
        assert penalty is not None
        return penalty, norms[0] if len(norms) == 1 else torch.cat(norms)

    def eager(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        labels: torch.Tensor | None,
        fake_labels: torch.Tensor | None,
        fake_moved: torch.Tensor | None,
    ) -> tuple[torch.Tensor, Stats]:
        """The objective with fastgan's fused ops and autograd, drawing its random numbers."""
        ops = Ops(uses_triton(real.device), self.scaler)  # the backend asked once a step, for every fused op
        extra = self.extra_inputs(real, fake)
        with weights_cast_once(self.precision, real.device.type):
            return self.objective(self.state.module, ops, real, fake, labels, fake_labels, fake_moved, *extra)

    def functional(
        self,
        params: Tensors,
        others: Tensors,
        aux: Tensors,
        real: torch.Tensor,
        fake: torch.Tensor,
        labels: torch.Tensor | None,
        fake_labels: torch.Tensor | None,
        fake_moved: torch.Tensor | None,
        *extra: torch.Tensor | None,
    ) -> tuple[torch.Tensor, Stats]:
        """The objective in plain PyTorch and torch.func, the critic's tensors given by name, then the inputs and
        :meth:`extra_inputs`."""
        del aux  # a critic update calls the critic alone

        def critic(x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
            return self.state.functional_call((params, others), *((x,) if y is None else (x, y)))

        return self.objective(critic, TRACED, real, fake, labels, fake_labels, fake_moved, *extra)

    def extra_inputs(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """What an update reads beyond its batch, random numbers in the order drawn: the real and the fake batch's
        augmentation parameters, their bCR augmentation's, LeCam's moving averages (the live tensor), then the
        penalty's alpha and noise (:func:`draws`); None where unused."""
        augmentation = augmentation_draws(self.augment, self.shard, real, fake)
        consistency = augmentation_draws(self.bcr_augment, self.shard, real, fake)
        lecam = self.lecam.ema if self.lecam is not None and self.terms is not None else None
        return (*augmentation, *consistency, lecam, *draws(self.kind, real, self.shard))

    def traced_inputs(self, inputs: Inputs) -> Inputs:
        """What :meth:`functional` takes after the tensors: the inputs, then :meth:`extra_inputs`."""
        return (*inputs, *self.extra_inputs(inputs[0], inputs[1]))

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
        if self.kind is not None and not self.kind.approximate and has_batch_statistics(self.state.module):
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
    """A generator update: the generator's side of ``terms`` on the critic's scores of the generated batch (and,
    for a relativistic loss, of the real batch: scored after the generated one, R3GAN's order, and detached). The
    critic (``aux``) is called, not trained: its tensors get no gradient. ``ema``: the moving average of the
    generator, updated after each update with the weight in the 0-dim device tensor ``ema_weight``, or None.
    ``precision``: both networks' (:mod:`fastgan.steps.precision`). ``augment``: the critic sees the generated
    (and the real) batch augmented, each by its own parameters, drawn in that order for the global batch.
    ``zcr``: zCR's generator weight lambda_gen (0: none) and noise scale sigma: the generator also runs on the
    latents moved by N(0, sigma^2), drawn after the augmentation's parameters, and the loss subtracts lambda_gen
    times the mean squared difference of the two batches of samples."""

    def __init__(
        self,
        state: ModuleState,
        aux: ModuleState,
        terms: LossTerms,
        ema: torch.nn.Module | None,
        precision: str = "fp32",
        augment: Augment | None = None,
        shard: distributed.Shard | None = None,
        zcr: tuple[float, float] = (0.0, 0.0),
    ):
        self.state, self.aux, self.terms, self.ema, self.precision = state, aux, terms, ema, precision
        self.augment, self.shard, self.zcr = augment, shard or distributed.Shard(), zcr
        # Filled before each call, so that a captured graph reads the current value instead of baking in the first.
        self.ema_weight: torch.Tensor | None = None

    def objective(
        self,
        generator: Fn,
        critic: Fn,
        ops: Ops,
        noise: torch.Tensor,
        labels: torch.Tensor | None,
        real: torch.Tensor | None,
        real_labels: torch.Tensor | None,
        fake_params: torch.Tensor | None = None,
        real_params: torch.Tensor | None = None,
        latent_noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Stats]:
        """The loss and its statistics: the one definition both forms run, with the generator and the critic
        they call, the ops, each batch's augmentation parameters and zCR's latent noise (None where unused)."""
        conditioning = () if labels is None else (labels,)
        with networks(self.precision, noise.device.type):
            fake = generator(noise, *conditioning)
            moved = generator(noise + latent_noise, *conditioning) if latent_noise is not None else None
        policy = self.augment.policy if self.augment is not None else None
        if fake_params is not None and fake.dim() != 4:
            raise ValueError(f"augment needs (B, C, H, W) images; the generator made shape {tuple(fake.shape)}")
        seen = ops.augment(fake, fake_params, policy)
        fake_out = scores(critic, seen, labels, self.aux.module, self.precision)
        real_out = None
        if real is not None:
            seen = ops.augment(real, real_params, policy)
            real_out = scores(critic, seen, real_labels, self.aux.module, self.precision).detach()
        loss = generator_loss(self.terms, fake_out, real_out, ops.fused)
        stats = {}
        if moved is not None:  # zCR: samples of nearby latents pushed apart
            latent = torch.nn.functional.mse_loss(fake.float(), moved.float())
            loss = loss - self.zcr[0] * latent
            stats["latent_consistency"] = latent.detach()
        return loss, {"loss": loss.detach(), **stats}

    def draws(self, noise: torch.Tensor, real: torch.Tensor | None) -> list[Any]:
        """The generated batch's augmentation parameters, then the real batch's, then zCR's latent noise
        (``sigma * N(0, I)`` in the noise's shape, for the global batch); None where unused."""
        (fake_params,) = augmentation_draws(self.augment, self.shard, noise)
        real_params = None
        if real is not None:
            (real_params,) = augmentation_draws(self.augment, self.shard, real)
        latent_noise = None
        if self.zcr[0]:
            rows = noise.shape[0] * self.shard.world_size
            latent_noise = self.shard.rows(torch.randn((rows, *noise.shape[1:]), device=noise.device)) * self.zcr[1]
            latent_noise = latent_noise.to(noise.dtype)
        return [fake_params, real_params, latent_noise]

    def eager(
        self,
        noise: torch.Tensor,
        labels: torch.Tensor | None,
        real: torch.Tensor | None,
        real_labels: torch.Tensor | None,
    ) -> tuple[torch.Tensor, Stats]:
        ops = Ops(uses_triton(noise.device))
        drawn = self.draws(noise, real)
        with weights_cast_once(self.precision, noise.device.type):
            return self.objective(self.state.module, self.aux.module, ops, noise, labels, real, real_labels, *drawn)

    def functional(
        self,
        params: Tensors,
        others: Tensors,
        aux: Tensors,
        noise: torch.Tensor,
        labels: torch.Tensor | None,
        real: torch.Tensor | None,
        real_labels: torch.Tensor | None,
        *drawn: torch.Tensor | None,
    ) -> tuple[torch.Tensor, Stats]:
        def generator(*args: torch.Tensor) -> Any:
            return self.state.functional_call((params, others), *args)

        def critic(*args: torch.Tensor) -> Any:
            return self.aux.functional_call(({}, aux), *args)

        return self.objective(generator, critic, TRACED, noise, labels, real, real_labels, *drawn)

    def traced_inputs(self, inputs: Inputs) -> Inputs:
        return (*inputs, *self.draws(inputs[0], inputs[2]))

    def scaled(self, total: torch.Tensor) -> torch.Tensor:
        return total

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.step()

    def after_update(self) -> None:
        if self.ema is None:
            return
        with torch.no_grad():
            averaged: list[torch.Tensor] = list(self.ema.parameters())
            assert self.ema_weight is not None  # GeneratorStep fills it before each call
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

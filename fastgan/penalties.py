"""Gradient penalties, per sample, unweighted (the caller applies lambda / gamma).

| penalty | where the critic's input gradient is taken | phi(n) | usual weight |
|---|---|---|---|
| WGAN-GP ``gradient_penalty`` | ``x = alpha*real + (1-alpha)*fake`` | ``(n - 1)^2`` | lambda = 10 |
| WGAN-LP ``gradient_penalty(one_sided=True)`` | same | ``max(0, n - 1)^2`` | lambda = 10 |
| zero-centred GP ``zero_centered_gradient_penalty`` | same | ``n^2`` | 10 |
| R1 ``r1_penalty`` | real samples | ``n^2`` | gamma/2 (StyleGAN2: gamma = 10 on FFHQ, 0.1-100) |
| R2 ``r2_penalty`` | fake samples | ``n^2`` | gamma/2 |
| R1 + R2 (steps' ``"r1+r2"``) | real, then fake samples | ``n^2``, the two means added | gamma/2 (R3GAN) |
| DRAGAN ``dragan_penalty`` | ``real + alpha * 0.5 * std(real) * U[0,1)`` | ``(n - 1)^2`` | lambda = 10 |
| approximate R1 ``approximate_r1_penalty`` | real samples | none: ``(D(x) - D(x + sigma*eps))^2`` | lambda = 100 |
| approximate R2 ``approximate_r2_penalty`` | fake samples | same | lambda = 100 |

The approximate R1 and R2 (Seaweed-APT, Lin et al. 2025) replace the input gradient by a finite difference along
Gaussian noise eps ~ N(0, I): for small sigma, ``E[(D(x) - D(x + sigma*eps))^2] ~ sigma^2 ||grad D(x)||^2``, so
lambda = 100 at sigma = 0.01 is R1 with gamma = 0.02. One more critic forward instead of a double backward: they
compile with plain ``torch.compile``, capture in a CUDA graph and run where second-order gradients do not (FSDP).

Each returns ``mean_i phi(||grad D(x_i)||_2)`` built with ``create_graph=True`` (so ``backward()`` reaches the
critic's parameters), and optionally the per-sample norms; the penalty itself is the fused op of
:mod:`fastgan.norm_penalty`. With ``scaler=`` (a ``torch.amp.GradScaler``) the input gradient follows PyTorch's AMP
recipe (:mod:`fastgan.amp`): scaled critic output, ``autograd.grad``, unscaled gradient, and the norms and
penalty in fp32 — no host sync, so the step stays capturable.

A conditional critic ``D(x, y)`` is given as a function of the samples alone, holding the labels of the real
samples the points come from (StudioGAN's convention): ``gradient_penalty(lambda x: D(x, y), real, fake)``,
``r1_penalty(lambda x: D(x, y), real)``, ``r2_penalty(lambda x: D(x, y_fake), fake)``.

:data:`PENALTIES` is the catalogue the step objects (:class:`fastgan.CriticStep`) take by name: one entry per
penalty, saying where its points are (:func:`penalty_points`) and what it does with each norm.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from . import _input_checks
from .amp import input_gradients
from .interpolation import checked_alpha, interpolate, interpolated_points
from .kernels.loss_terms import PAIRED, SQUARE, Term
from .losses import loss_of_terms
from .norm_penalty import norm_penalty

DRAGAN_PERTURBATION = 0.5  # DRAGAN's noise scale, in units of the real batch's standard deviation


@dataclass(frozen=True)
class PenaltyKind:
    """One penalty of the catalogue: ``mean_i phi(||grad D(x_i)||)`` with ``phi(n) = (n - center)^2`` (or
    ``max(0, n - center)^2`` when ``one_sided``), at the points ``at`` names (see :func:`penalty_points`)."""

    center: float
    one_sided: bool
    at: str  # "interpolates", "real", "fake", "dragan", or "real+fake" (the sum of the penalties at both)
    approximate: bool = False  # the finite difference along Gaussian noise instead of the input gradient

    @property
    def parts(self) -> tuple[PenaltyKind, ...]:
        """The penalties at one kind of point it sums: itself, or for ``"real+fake"`` R1's and R2's, in that
        order."""
        if self.at != "real+fake":
            return (self,)
        return (replace(self, at="real"), replace(self, at="fake"))

    @property
    def draws_alpha(self) -> bool:
        """Whether its points need one random weight per sample."""
        return self.at in ("interpolates", "dragan")

    @property
    def draws_noise(self) -> bool:
        """Whether it needs noise of the samples' shape: DRAGAN's (uniform), the approximate penalties' (normal)."""
        return self.at == "dragan" or self.approximate


PENALTIES = {
    "gp": PenaltyKind(1.0, False, "interpolates"),
    "lp": PenaltyKind(1.0, True, "interpolates"),
    "zero-centred": PenaltyKind(0.0, False, "interpolates"),
    "r1": PenaltyKind(0.0, False, "real"),
    "r2": PenaltyKind(0.0, False, "fake"),
    "r1+r2": PenaltyKind(0.0, False, "real+fake"),
    "dragan": PenaltyKind(1.0, False, "dragan"),
    "r1-approx": PenaltyKind(0.0, False, "real", approximate=True),
    "r2-approx": PenaltyKind(0.0, False, "fake", approximate=True),
}
APPROXIMATION_SIGMA = 0.01  # the approximate penalties' noise scale (Seaweed-APT's)
_SQUARED_DIFFERENCE = Term(SQUARE)  # mean((a_i - b_i)^2) with PAIRED: one fused launch each way


def penalty_points(
    kind: PenaltyKind,
    real: torch.Tensor,
    fake: torch.Tensor | None,
    alpha: torch.Tensor | None,
    noise: torch.Tensor | None,
    fused: bool | None = None,
    perturbation: float = DRAGAN_PERTURBATION,
) -> torch.Tensor:
    """Where ``kind`` takes the critic's input gradient (detached: the points are where a fresh input gradient
    is taken), from checked (B, ...) samples, ``alpha`` (B,) and DRAGAN's ``noise`` (real's shape):
    interpolates ``alpha*real + (1-alpha)*fake``; the real or the fake samples; DRAGAN's
    ``real + alpha * perturbation * std(real) * noise``. Interpolation is :func:`interpolated_points`
    (``fused``: the kernels, plain PyTorch, or the backend rule's choice when None)."""
    if kind.at == "interpolates":
        return interpolated_points(real, fake, alpha, fused)
    if kind.at == "real":
        return real
    if kind.at == "fake":
        return fake
    perturbed = torch.addcmul(real, noise, perturbation * real.std())
    return interpolated_points(perturbed, real, alpha, fused)


def point_labels(kind: PenaltyKind, labels, fake_labels):
    """The labels a conditional critic is given at ``kind``'s points: the fake samples' for R2, else the real
    samples' (the points are made from them)."""
    return fake_labels if kind.at == "fake" else labels


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    alpha: torch.Tensor | None = None,
    center: float = 1.0,
    one_sided: bool = False,
    return_norms: bool = False,
    scaler: torch.amp.GradScaler | None = None,
):
    """The whole WGAN-GP penalty, unweighted (multiply by lambda, e.g. 10, yourself).

    Interpolates ``x_hat = alpha*real + (1-alpha)*fake`` per sample, runs ``critic(x_hat)``, takes
    ``grad critic(x_hat)`` with ``create_graph=True`` and returns the fused per-sample penalty, so that
    ``backward()`` on a loss containing it reaches the critic's parameters (double backward).

    Args:
        critic: module or function mapping (B, ...) to (B,) or (B, 1) scores.
        real, fake: (B, ...) floating tensors of one shape, dtype and device. Pass them detached as the reference
            does; a ``fake`` that requires grad also gets a gradient (DRAGAN-style variants).
        alpha: per-sample weights (B,) or (B, 1, ..., 1); drawn with ``torch.rand`` on the device when None.
        center, one_sided, return_norms: as in :func:`gradient_norm_penalty`.
        scaler: a ``GradScaler`` when training under autocast (see the module docstring).

    Returns:
        As :func:`gradient_norm_penalty`.
    """
    _input_checks.critic_and_scaler(critic, scaler)
    center = _input_checks.penalty_shape(center, one_sided)
    return _penalty_at(critic, interpolate(real, fake, alpha), center, one_sided, return_norms, scaler)


def compute_gradient_penalty(
    D: Callable[[torch.Tensor], torch.Tensor],
    real_samples: torch.Tensor,
    fake_samples: torch.Tensor,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Drop-in replacement for the reference's ``compute_gradient_penalty`` (WGAN-GP, centre 1, unweighted).

    Same signature and same random numbers: alpha is drawn as ``torch.rand((B, 1))`` from the CPU generator
    and then moved to ``device`` (``real_samples``' device when None), exactly like the reference, so swapping the
    function leaves a training run unchanged. Returns the 0-dim penalty (fp32; fp64 for fp64 samples).
    """
    _input_checks.pair(real_samples, fake_samples, "real_samples", "fake_samples")
    alpha = torch.rand((real_samples.size(0), 1))
    alpha = alpha.to(real_samples.device if device is None else device)
    return gradient_penalty(D, real_samples, fake_samples, alpha=alpha)


def zero_centered_gradient_penalty(critic, real, fake, *, alpha=None, return_norms=False, scaler=None):
    """Zero-centred GP on interpolates: ``mean ||grad D(x_hat)||^2`` (Thanh-Tung et al.); see
    :func:`gradient_penalty`."""
    return gradient_penalty(critic, real, fake, alpha=alpha, center=0.0, return_norms=return_norms, scaler=scaler)


def r1_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    *,
    return_norms: bool = False,
    scaler: torch.amp.GradScaler | None = None,
):
    """R1: ``mean_i ||grad D(real_i)||^2`` at the real samples (B, ...). Multiply by gamma/2 (StyleGAN2's form).

    ``real`` is used detached (it is not modified). Returns the 0-dim fp32 penalty, or ``(penalty, norms)``.
    """
    return _squared_norm_at(critic, "real", real, return_norms, scaler)


def r2_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    fake: torch.Tensor,
    *,
    return_norms: bool = False,
    scaler: torch.amp.GradScaler | None = None,
):
    """R2: ``mean_i ||grad D(fake_i)||^2`` at the generated samples (B, ...); as :func:`r1_penalty`."""
    return _squared_norm_at(critic, "fake", fake, return_norms, scaler)


def dragan_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    *,
    alpha: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    perturbation: float = DRAGAN_PERTURBATION,
    center: float = 1.0,
    return_norms: bool = False,
    scaler: torch.amp.GradScaler | None = None,
):
    """DRAGAN (Kodali et al.): the penalty ``(||grad D(x)|| - center)^2`` around perturbed real samples.

    ``x = real + alpha_i * perturbation * std(real) * noise`` with ``alpha`` (B,) ~ U[0, 1) and ``noise`` of
    ``real``'s shape ~ U[0, 1) (both drawn on the device when None), StudioGAN's form; ``std`` is over the batch.
    """
    _input_checks.critic_and_scaler(critic, scaler)
    _input_checks.batched("real", _input_checks.float_tensor("real", real))
    perturbation = _input_checks.positive_real("perturbation", perturbation)
    center = _input_checks.penalty_shape(center, False)
    if noise is None:
        noise = torch.rand_like(real)
    else:
        _input_checks.float_tensor("noise", noise)
        _input_checks.same_shape("noise", noise, "real", real)
        _input_checks.same_device("noise", noise, "real", real)
    alpha = checked_alpha(alpha, real)
    x = penalty_points(
        PENALTIES["dragan"], real.detach(), None, alpha, noise.detach().to(real.dtype), perturbation=perturbation
    )
    return _penalty_at(critic, x, center, False, return_norms, scaler)


def finite_difference(scores: torch.Tensor, perturbed_scores: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
    """``mean_i (scores_i - perturbed_scores_i)^2`` of checked critic scores (B,) or (B, 1), fused (the loss
    kernel's paired square; ``fused`` as in :func:`fastgan.losses.loss_of_terms`): the approximate penalties'
    value. Returns a 0-dim fp32 tensor (fp64 for fp64 scores)."""
    return loss_of_terms(scores, _SQUARED_DIFFERENCE, perturbed_scores, None, fused, PAIRED)


def perturbed(samples: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """``samples + sigma * noise``: where the approximate penalties score the critic a second time."""
    return torch.add(samples, noise, alpha=sigma)


def _approximate_at(critic, name: str, samples: torch.Tensor, sigma: object, noise: torch.Tensor | None):
    _input_checks.critic_and_scaler(critic, None)
    _input_checks.batched(name, _input_checks.float_tensor(name, samples))
    sigma = _input_checks.positive_real("sigma", sigma)
    if noise is None:
        noise = torch.randn_like(samples)
    else:
        _input_checks.float_tensor("noise", noise)
        _input_checks.same_shape("noise", noise, name, samples)
        _input_checks.same_device("noise", noise, name, samples)
    samples = samples.detach()
    scores = _input_checks.critic_scores(critic(samples), samples.shape[0], critic)
    moved = _input_checks.critic_scores(
        critic(perturbed(samples, noise.detach().to(samples.dtype), sigma)), samples.shape[0], critic
    )
    return finite_difference(scores, moved)


def approximate_r1_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    *,
    sigma: float = APPROXIMATION_SIGMA,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Approximate R1 without a double backward (Seaweed-APT): ``mean_i (D(x_i) - D(x_i + sigma * eps_i))^2`` at
    the real samples (B, ...), unweighted (multiply by lambda, 100 in the paper).

    ``noise``: eps of ``real``'s shape, drawn from N(0, I) on the device when None. Two critic calls, in that
    order: the samples, then the perturbed samples; the squared difference is one fused op. Returns the 0-dim
    fp32 penalty (fp64 for an fp64 critic), differentiable with respect to the critic's parameters.
    """
    return _approximate_at(critic, "real", real, sigma, noise)


def approximate_r2_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    fake: torch.Tensor,
    *,
    sigma: float = APPROXIMATION_SIGMA,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Approximate R2: :func:`approximate_r1_penalty` at the generated samples (B, ...)."""
    return _approximate_at(critic, "fake", fake, sigma, noise)


_checked_for_batchnorm: weakref.WeakSet = weakref.WeakSet()


def has_batch_statistics(module: nn.Module) -> bool:
    """Whether ``module`` normalises with batch statistics (BatchNorm in training mode, or without running
    statistics): then its samples interact."""
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and (m.training or not m.track_running_stats)
        for m in module.modules()
    )


def warn_batchnorm(critic: object, stacklevel: int = 4) -> None:
    """Warn once per critic that normalises with batch statistics: its samples interact, and a per-sample
    penalty means little there."""
    if not isinstance(critic, nn.Module) or critic in _checked_for_batchnorm:
        return
    _checked_for_batchnorm.add(critic)
    if has_batch_statistics(critic):
        warnings.warn(
            f"the critic {type(critic).__name__} contains BatchNorm: a per-sample gradient penalty is ill-defined "
            "when samples interact through batch statistics (the WGAN-GP paper uses LayerNorm or no normalization)",
            UserWarning,
            stacklevel=stacklevel,
        )


def _squared_norm_at(critic, name: str, samples: torch.Tensor, return_norms: bool, scaler):
    """R1 / R2: the zero-centred penalty at ``samples`` themselves (used detached, never modified)."""
    _input_checks.critic_and_scaler(critic, scaler)
    _input_checks.batched(name, _input_checks.float_tensor(name, samples))
    return _penalty_at(critic, samples.detach(), 0.0, False, return_norms, scaler)


def _penalty_at(critic, x: torch.Tensor, center: float, one_sided: bool, return_norms: bool, scaler):
    """The penalty of ``critic``'s input gradient at the points ``x`` (made to require grad)."""
    warn_batchnorm(critic)
    if not x.requires_grad:
        x.requires_grad_(True)
    return norm_penalty(input_gradients(critic, x, scaler), center, one_sided, return_norms)

"""Gradient penalties, per sample, unweighted (the caller applies lambda / gamma).

| penalty | where the critic's input gradient is taken | phi(n) | usual weight |
|---|---|---|---|
| WGAN-GP ``gradient_penalty`` | ``x = alpha*real + (1-alpha)*fake`` | ``(n - 1)^2`` | lambda = 10 |
| WGAN-LP ``gradient_penalty(one_sided=True)`` | same | ``max(0, n - 1)^2`` | lambda = 10 |
| zero-centred GP ``zero_centered_gradient_penalty`` | same | ``n^2`` | 10 |
| R1 ``r1_penalty`` | real samples | ``n^2`` | gamma/2 (StyleGAN2: gamma = 10 on FFHQ, 0.1-100) |
| R2 ``r2_penalty`` | fake samples | ``n^2`` | gamma/2 |
| DRAGAN ``dragan_penalty`` | ``real + alpha * 0.5 * std(real) * U[0,1)`` | ``(n - 1)^2`` | lambda = 10 |

Each returns ``mean_i phi(||grad D(x_i)||_2)`` built with ``create_graph=True`` (so ``backward()`` reaches the
critic's parameters), and optionally the per-sample norms. With ``scaler=`` (a ``torch.amp.GradScaler``) the
input gradient follows PyTorch's AMP recipe: scaled critic output, ``autograd.grad``, unscaled gradient, and
the norms and penalty in fp32 — no host sync, so the step stays capturable.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from . import _checks
from ._layout import empty_rows_like, rows_like
from .backend import uses_triton
from .interpolation import check_pair, interpolate


class _GradNormPenalty(torch.autograd.Function):
    """The penalty with a one-pass backward, fused in Triton or in eager PyTorch.

    The backward is first order: the second order flows through the critic's graph that produced ``grads``.
    """

    @staticmethod
    def forward(ctx, grads: torch.Tensor, center: float, one_sided: bool, fused: bool):
        if fused:
            from .kernels.grad_norm_penalty import grad_norm_penalty_fwd

            grads = rows_like(grads, grads)
            penalty, norms = grad_norm_penalty_fwd(grads, center, one_sided)
        else:
            penalty, norms = _penalty_fwd_torch(grads, center, one_sided)
        ctx.save_for_backward(grads, norms)
        ctx.center, ctx.one_sided, ctx.fused = center, one_sided, fused
        ctx.mark_non_differentiable(norms)
        return penalty, norms

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_penalty: torch.Tensor, _grad_norms: torch.Tensor):
        grads, norms = ctx.saved_tensors
        if ctx.fused:
            from .kernels.grad_norm_penalty import grad_norm_penalty_bwd

            d_grads = grad_norm_penalty_bwd(
                grads, norms, grad_penalty, empty_rows_like(grads), ctx.center, ctx.one_sided
            )
        else:
            d_grads = _penalty_bwd_torch(grads, norms, grad_penalty, ctx.center, ctx.one_sided)
        return d_grads, None, None, None


def _deviation(norms: torch.Tensor, center: float, one_sided: bool) -> torch.Tensor:
    dev = norms - center
    return dev.clamp_min(0.0) if one_sided else dev  # clamp_min keeps NaN


def _penalty_fwd_torch(grads: torch.Tensor, center: float, one_sided: bool) -> tuple[torch.Tensor, torch.Tensor]:
    acc = torch.float64 if grads.dtype == torch.float64 else torch.float32
    if grads.dim() == 1:
        norms = grads.abs().to(acc)
    else:
        # vector_norm over the trailing dims reads channels_last and strided views without a copy.
        norms = torch.linalg.vector_norm(grads, dim=tuple(range(1, grads.dim())), dtype=acc)
    return _deviation(norms, center, one_sided).square().mean(), norms


def _penalty_bwd_torch(
    grads: torch.Tensor, norms: torch.Tensor, grad_penalty: torch.Tensor, center: float, one_sided: bool
) -> torch.Tensor:
    # d/dg of mean_i phi(n_i) = phi'(n_i) * g_i / (n_i * B); zero where n_i = 0, NaN kept.
    coef = _deviation(norms, center, one_sided) * (2.0 / grads.shape[0]) / norms.masked_fill(norms == 0, 1.0)
    coef = (coef.masked_fill(norms == 0, 0.0) * grad_penalty).reshape((-1,) + (1,) * (grads.dim() - 1))
    if grads.dtype == torch.bfloat16:
        return grads * coef.to(grads.dtype)  # bf16 has fp32's range: one pass, one extra rounding
    return (grads * coef).to(grads.dtype)


def _penalty_args(center: object, one_sided: object) -> float:
    if not isinstance(one_sided, bool):
        raise TypeError(f"one_sided must be a bool, got {type(one_sided).__name__}")
    return _checks.finite_real("center", center)


def _norm_penalty(grads: torch.Tensor, center: float, one_sided: bool, return_norms: bool):
    penalty, norms = _GradNormPenalty.apply(grads, center, one_sided, uses_triton(grads.device))
    return (penalty, norms) if return_norms else penalty


def gradient_norm_penalty(
    grads: torch.Tensor, center: float = 1.0, one_sided: bool = False, return_norms: bool = False
):
    """Mean over samples of phi(||g_i||_2), with phi(n) = (n - center)^2, or max(0, n - center)^2 if one-sided.

    ``center=1`` is WGAN-GP's two-sided penalty, ``one_sided=True`` WGAN-LP's, ``center=0`` the zero-centred
    penalty (R1/R2's mean squared norm). A sample whose gradient is all zero contributes a zero gradient, never
    NaN; NaN in a sample gives a NaN penalty.

    Args:
        grads: (B, ...) floating gradients, one sample per leading index, any layout.
        center: the target norm c (finite).
        one_sided: penalise only norms above ``center``.
        return_norms: also return the per-sample norms (free: the forward computes them anyway).

    Returns:
        The penalty, a 0-dim fp32 tensor (fp64 for fp64 ``grads``), differentiable with respect to ``grads``;
        with ``return_norms``, the tuple ``(penalty, norms)`` where ``norms`` is a detached (B,) tensor of the
        same dtype.
    """
    _checks.batched("grads", _checks.float_tensor("grads", grads))
    center = _penalty_args(center, one_sided)
    return _norm_penalty(grads, center, one_sided, return_norms)


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
        real, fake: (B, ...) floating tensors of one shape, dtype and device. Pass them detached as the seed
            does; a ``fake`` that requires grad also gets a gradient (DRAGAN-style variants).
        alpha: per-sample weights (B,) or (B, 1, ..., 1); drawn with ``torch.rand`` on the device when None.
        center, one_sided, return_norms: as in :func:`gradient_norm_penalty`.
        scaler: a ``GradScaler`` when training under autocast (see the module docstring).

    Returns:
        As :func:`gradient_norm_penalty`.
    """
    _critic_args(critic, scaler)
    center = _penalty_args(center, one_sided)
    return _penalty_at(critic, interpolate(real, fake, alpha), center, one_sided, return_norms, scaler)


def compute_gradient_penalty(
    D: Callable[[torch.Tensor], torch.Tensor],
    real_samples: torch.Tensor,
    fake_samples: torch.Tensor,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Drop-in replacement for the seed's ``compute_gradient_penalty`` (WGAN-GP, centre 1, unweighted).

    Same signature and same random numbers: alpha is drawn as ``torch.rand((B, 1))`` from the CPU generator
    and then moved to ``device`` (``real_samples``' device when None), exactly like the seed, so swapping the
    function leaves a training run unchanged. Returns the 0-dim penalty (fp32; fp64 for fp64 samples).
    """
    check_pair(real_samples, fake_samples, "real_samples", "fake_samples")
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
    perturbation: float = 0.5,
    center: float = 1.0,
    return_norms: bool = False,
    scaler: torch.amp.GradScaler | None = None,
):
    """DRAGAN (Kodali et al.): the penalty ``(||grad D(x)|| - center)^2`` around perturbed real samples.

    ``x = real + alpha_i * perturbation * std(real) * noise`` with ``alpha`` (B,) ~ U[0, 1) and ``noise`` of
    ``real``'s shape ~ U[0, 1) (both drawn on the device when None), StudioGAN's form; ``std`` is over the batch.
    """
    _critic_args(critic, scaler)
    _checks.batched("real", _checks.float_tensor("real", real))
    perturbation = _checks.positive_real("perturbation", perturbation)
    center = _penalty_args(center, False)
    if noise is None:
        noise = torch.rand_like(real)
    else:
        _checks.float_tensor("noise", noise)
        _checks.same_shape("noise", noise, "real", real)
        _checks.same_device("noise", noise, "real", real)
    real = real.detach()
    perturbed = torch.addcmul(real, noise.to(real.dtype), perturbation * real.std())
    # real + alpha * (perturbed - real), fused, with one alpha per sample.
    x = interpolate(perturbed, real, alpha)
    return _penalty_at(critic, x, center, False, return_norms, scaler)


class LazyRegularizer:
    """Apply a penalty only every ``every``-th critic step, with its weight multiplied by ``every``.

    StyleGAN2's lazy regularization (R1 every 16 minibatches): the penalty's average effect is unchanged and
    its cost drops by ``every``. Use :meth:`adam_hyperparameters` for the matching optimizer correction
    (StyleGAN2: ``lr * c`` and ``beta ** c`` with ``c = every / (every + 1)``).

    Example::

        lazy = fastgan.LazyRegularizer(every=16, weight=gamma / 2)
        loss = d_loss + lazy(step, lambda: fastgan.r1_penalty(D, real))
    """

    def __init__(self, every: int, weight: float):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.every = every
        self.weight = _checks.finite_real("weight", weight)

    def due(self, step: int) -> bool:
        """Whether the penalty is applied at ``step`` (steps 0, every, 2*every, ...)."""
        return step % self.every == 0

    def __call__(self, step: int, penalty: Callable[[], torch.Tensor]) -> torch.Tensor | float:
        """``weight * every * penalty()`` on due steps, else ``0.0`` without calling ``penalty``."""
        if not self.due(step):
            return 0.0
        return (self.weight * self.every) * penalty()

    def adam_hyperparameters(self, lr: float, betas: tuple[float, float]) -> tuple[float, tuple[float, float]]:
        """The learning rate and betas to give the critic's Adam under this schedule (StyleGAN2's correction)."""
        c = self.every / (self.every + 1)
        return lr * c, (betas[0] ** c, betas[1] ** c)


_checked_for_batchnorm: weakref.WeakSet = weakref.WeakSet()


def _warn_batchnorm(critic: object) -> None:
    if not isinstance(critic, nn.Module) or critic in _checked_for_batchnorm:
        return
    _checked_for_batchnorm.add(critic)
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules()):
        warnings.warn(
            f"the critic {type(critic).__name__} contains BatchNorm: a per-sample gradient penalty is ill-defined "
            "when samples interact through batch statistics (the WGAN-GP paper uses LayerNorm or no normalization)",
            UserWarning,
            stacklevel=4,
        )


def _critic_args(critic: object, scaler: object) -> None:
    if not callable(critic):
        raise TypeError(f"critic must be callable, got {type(critic).__name__}")
    if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
        raise TypeError(f"scaler must be a torch.amp.GradScaler or None, got {type(scaler).__name__}")


# Largest loss scale used for a critic's input gradient: leaves 64x headroom below fp16's largest value for
# gradients that grow inside the critic, while lifting tiny ones 1024x away from underflow.
MAX_PENALTY_SCALE = 2.0**10


def _input_gradients(critic, x: torch.Tensor, scaler: torch.amp.GradScaler | None) -> torch.Tensor:
    scores = critic(x)
    if scaler is None or not scaler.is_enabled():
        (grads,) = torch.autograd.grad(scores, x, grad_outputs=torch.ones_like(scores), create_graph=True)
        return grads
    # AMP recipe: differentiate the scaled output (small gradients survive fp16), then unscale in fp32. The
    # scale is read as a device tensor (scaler.scale of a one), not with get_scale(), which syncs the host.
    # It is capped: every sample's output gradient equals the scale, and the scaler's default 2^16 already
    # overflows fp16 (max 65504) on its way into the critic; when even the cap overflows, the loss is inf,
    # the scaler skips the step and lowers its scale below the cap.
    scale = scaler.scale(torch.ones((), device=scores.device, dtype=torch.float32)).clamp(max=MAX_PENALTY_SCALE)
    scaled = scores.float() * scale
    (grads,) = torch.autograd.grad(scaled, x, grad_outputs=torch.ones_like(scaled), create_graph=True)
    return grads.float() / scale


def _squared_norm_at(critic, name: str, samples: torch.Tensor, return_norms: bool, scaler):
    """R1 / R2: the zero-centred penalty at ``samples`` themselves (used detached, never modified)."""
    _critic_args(critic, scaler)
    _checks.batched(name, _checks.float_tensor(name, samples))
    return _penalty_at(critic, samples.detach(), 0.0, False, return_norms, scaler)


def _penalty_at(critic, x: torch.Tensor, center: float, one_sided: bool, return_norms: bool, scaler):
    """The penalty of ``critic``'s input gradient at the points ``x`` (made to require grad)."""
    _warn_batchnorm(critic)
    if not x.requires_grad:
        x.requires_grad_(True)
    return _norm_penalty(_input_gradients(critic, x, scaler), center, one_sided, return_norms)

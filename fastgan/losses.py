"""GAN losses on critic outputs, each one fused op (one launch forward, one backward on CUDA).

Inputs are critic outputs of shape (B,) or (B, 1) in any float dtype (real and fake batches may differ in
size); every loss returns a 0-dim fp32 tensor (fp64 if an input is fp64), accumulated in fp32.

| loss | discriminator / critic | generator |
|---|---|---|
| WGAN | ``mean(D(fake)) - mean(D(real))`` | ``-mean(D(fake))`` |
| LSGAN (a, b, c) | ``0.5 E[(D(x)-b)^2] + 0.5 E[(D(G(z))-a)^2]`` | ``0.5 E[(D(G(z))-c)^2]`` |
| standard GAN (logits) | ``E[softplus(-D(x))] + E[softplus(D(G(z)))]`` (BCE) | ``E[softplus(-D(G(z)))]`` (non-saturating) |
| hinge | ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]`` | ``-E[D(G(z))]`` |
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import _checks
from .backend import uses_triton
from .kernels.loss_terms import HINGE, LINEAR, SOFTPLUS, SQUARE, Term


class _GanLossTriton(torch.autograd.Function):
    """A loss of one or two critic outputs: one fused launch forward, one backward."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor | None, term_a: Term, term_b: Term | None):
        from .kernels.gan_loss import gan_loss_fwd

        ctx.save_for_backward(a, b)
        ctx.terms = (term_a, term_b)
        return gan_loss_fwd(a, term_a, b, term_b)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        from .kernels.gan_loss import gan_loss_bwd

        a, b = ctx.saved_tensors
        term_a, term_b = ctx.terms
        da, db = gan_loss_bwd(grad_out, a, term_a, b, term_b)
        return da, db, None, None


def _loss(
    inputs: list[tuple[str, torch.Tensor]], terms: list[Term], eager: Callable[..., torch.Tensor]
) -> torch.Tensor:
    """Validate the critic outputs, then run the fused kernel (``terms``) or the eager form (``eager``).

    ``eager`` receives the outputs converted to the accumulation dtype: on CPU a few autograd-recorded ops beat
    a Python autograd.Function for tensors this small.
    """
    for name, x in inputs:
        _checks.critic_output(name, x)
    if len(inputs) == 2:
        _checks.same_device(inputs[1][0], inputs[1][1], inputs[0][0], inputs[0][1])
    tensors = [x for _, x in inputs]
    if uses_triton(tensors[0].device):
        if len(tensors) == 1:
            return _GanLossTriton.apply(tensors[0], None, terms[0], None)
        return _GanLossTriton.apply(tensors[0], tensors[1], terms[0], terms[1])
    acc = torch.float64 if any(x.dtype == torch.float64 for x in tensors) else torch.float32
    return eager(*(x if x.dtype == acc else x.to(acc) for x in tensors))


# Terms that take no user parameter, built once.
_MINUS_MEAN = Term(LINEAR, weight=-1.0)
_MEAN = Term(LINEAR)
_BCE_LABEL_1 = Term(SOFTPLUS, -1.0)
_BCE_LABEL_0 = Term(SOFTPLUS, 1.0)
_HINGE_REAL = Term(HINGE, -1.0)
_HINGE_FAKE = Term(HINGE, 1.0)


def wgan_critic_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss ``mean(D(fake)) - mean(D(real))`` (minimised by the critic)."""
    return _loss([("real_out", real_out), ("fake_out", fake_out)], [_MINUS_MEAN, _MEAN],
                 lambda r, f: f.mean() - r.mean())


def wgan_generator_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss ``-mean(D(fake))``."""
    return _loss([("fake_out", fake_out)], [_MINUS_MEAN], lambda f: -f.mean())


def lsgan_discriminator_loss(
    real_out: torch.Tensor, fake_out: torch.Tensor, a: float = 0.0, b: float = 1.0
) -> torch.Tensor:
    """LSGAN discriminator loss ``0.5 E[(D(x) - b)^2] + 0.5 E[(D(G(z)) - a)^2]`` (fake target a, real b).

    Equal to the seed's ``(MSELoss(D(real), 1) + MSELoss(D(fake), 0)) / 2`` for a = 0, b = 1.
    """
    a = _checks.finite_real("a", a)
    b = _checks.finite_real("b", b)
    return _loss([("real_out", real_out), ("fake_out", fake_out)], [Term(SQUARE, b, 0.5), Term(SQUARE, a, 0.5)],
                 lambda r, f: ((r - b).square().mean() + (f - a).square().mean()) * 0.5)


def lsgan_generator_loss(fake_out: torch.Tensor, c: float = 1.0, *, half: bool = True) -> torch.Tensor:
    """LSGAN generator loss ``0.5 E[(D(G(z)) - c)^2]``.

    ``half=False`` drops the 0.5 and gives the seed's ``MSELoss(D(fake), 1)`` exactly (twice the paper's loss,
    so twice its gradients: with Adam this changes almost nothing, with SGD it doubles the step).
    """
    c = _checks.finite_real("c", c)
    if not isinstance(half, bool):
        raise TypeError(f"half must be a bool, got {type(half).__name__}")
    weight = 0.5 if half else 1.0
    return _loss([("fake_out", fake_out)], [Term(SQUARE, c, weight)], lambda f: (f - c).square().mean() * weight)


def ns_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Standard GAN discriminator loss from logits: ``BCE(D(x), 1) + BCE(D(G(z)), 0)``, numerically stable."""
    return _loss([("real_logits", real_logits), ("fake_logits", fake_logits)],
                 [_BCE_LABEL_1, _BCE_LABEL_0],
                 lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean())


def ns_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``BCE(D(G(z)), 1) = E[softplus(-D(G(z)))]``."""
    return _loss([("fake_logits", fake_logits)], [_BCE_LABEL_1], lambda f: F.softplus(-f).mean())


def hinge_discriminator_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]``."""
    return _loss([("real_out", real_out), ("fake_out", fake_out)], [_HINGE_REAL, _HINGE_FAKE],
                 lambda r, f: F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean())


def hinge_generator_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss ``-E[D(G(z))]``."""
    return wgan_generator_loss(fake_out)


__all__ = [
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "ns_discriminator_loss",
    "ns_generator_loss",
    "wgan_critic_loss",
    "wgan_generator_loss",
]

"""GAN losses on critic outputs, each one fused op (on CUDA one launch each way for batches up to 1024 scores).

Inputs are critic outputs of shape (B,) or (B, 1) in any float dtype (real and fake batches may differ in
size); every loss returns a 0-dim fp32 tensor (fp64 if an input is fp64), accumulated in fp32.

| loss | discriminator / critic | generator |
|---|---|---|
| WGAN | ``mean(D(fake)) - mean(D(real))`` | ``-mean(D(fake))`` |
| LSGAN (a, b, c) | ``0.5 E[(D(x)-b)^2] + 0.5 E[(D(G(z))-a)^2]`` | ``0.5 E[(D(G(z))-c)^2]`` |
| standard GAN (logits) | ``E[softplus(-D(x))] + E[softplus(D(G(z)))]`` (target 1 - s) | ``E[softplus(-D(G(z)))]`` |
| hinge | ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]`` | ``-E[D(G(z))]`` |
| RpGAN (paired) | ``E[softplus(D(G(z_i)) - D(x_i))]`` | ``E[softplus(D(x_i) - D(G(z_i)))]`` |
| RaGAN | ``(E[sp(m_f - D(x))] + E[sp(D(G(z)) - m_r)]) / 2`` | ``(E[sp(D(x) - m_f)] + E[sp(m_r - D(G(z)))]) / 2`` |

RpGAN (Jolicoeur-Martineau 2019; R3GAN, Huang et al. 2024) pairs the i-th real and fake score, so both batches have
one size. RaGAN, relativistic average (Jolicoeur-Martineau 2019, ESRGAN's form), compares each score with the other
batch's mean (``m_r = mean D(x)``, ``m_f = mean D(G(z))``, ``sp`` softplus), halved as in her code. The relativistic
generator losses take the real scores too; no gradient reaches them through the generator, who only moves the fake
ones.

The standard GAN's critic loss is the BCE of logits, its real target 1 - s with s = ``label_smoothing`` (0: none).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import _input_checks
from .backend import launchers, uses_triton
from .kernels.accumulator import accumulator_dtype
from .kernels.loss_terms import AVERAGE, HINGE, LINEAR, LOGISTIC, PAIRED, SEPARATE, SQUARE, Term


class _Loss(torch.autograd.Function):
    """``sum_k w_k * mean(f_k(x_k))`` over one or two critic outputs in the Triton kernels: one launch each way
    for batches up to 1024 scores."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor | None, term_a: Term, term_b: Term | None, relation: int):
        ctx.save_for_backward(a, b)
        ctx.terms = (term_a, term_b, relation)
        return launchers("losses").losses_fwd(a, term_a, b, term_b, relation, check=False)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        a, b = ctx.saved_tensors
        term_a, term_b, relation = ctx.terms
        da, db = launchers("losses").losses_bwd(grad_out, a, term_a, b, term_b, relation, check=False)
        return da, db, None, None, None


def _term_values(x: torch.Tensor, term: Term) -> tuple[torch.Tensor, float]:
    """``f(x)`` of ``term`` elementwise divided by a constant, and that constant (see
    ``fastgan.kernels.loss_terms``): the fewest ops autograd records, each of which costs microseconds on a
    batch of scores. NaN in gives NaN out."""
    kind, p = term.kind, term.param
    if kind == LINEAR:
        return x, 1.0
    if kind == SQUARE:
        return (x - p).square(), 1.0
    if kind == LOGISTIC:
        # softplus(x) - p x: one op for labels 0 and 1 (softplus(-x) = -softplus(x, beta=-1), threshold included).
        if p == 0.0:
            return F.softplus(x), 1.0
        if p == 1.0:
            return F.softplus(x, beta=-1.0), -1.0
        return F.softplus(x) - p * x, 1.0
    # HINGE: relu(1 + p x)
    if p == -1.0:
        return torch.rsub(x, 1.0).relu(), 1.0
    return (x + 1.0 if p == 1.0 else x * p + 1.0).relu(), 1.0


def _one_term_mean(x: torch.Tensor, term: Term) -> torch.Tensor:
    """``mean(f(x))`` of ``term`` in one recorded op where PyTorch has it as a loss (the generator's side)."""
    if term.kind == SQUARE:
        return F.mse_loss(x, torch.full_like(x, term.param))
    if term.kind == LOGISTIC:
        return F.binary_cross_entropy_with_logits(x, torch.full_like(x, term.param))
    values, c = _term_values(x, term)
    return _scaled(values.mean(), c)


def _scaled(x: torch.Tensor, c: float) -> torch.Tensor:
    return x if c == 1.0 else (-x if c == -1.0 else x * c)


def _combined(x: torch.Tensor, c_x: float, y: torch.Tensor, c_y: float) -> tuple[torch.Tensor, float]:
    """``c_x * x + c_y * y`` as ``(z, c)`` with ``c * z`` equal to it, in as few ops as the constants allow
    (WGAN's and BCE's: one subtraction); ``c`` is applied after the mean."""
    if c_x == c_y:
        return x + y, c_x
    if c_x == -c_y:
        return y - x, c_y
    return torch.add(x * c_x, y, alpha=c_y), 1.0


def loss_of_terms(
    a: torch.Tensor,
    term_a: Term,
    b: torch.Tensor | None = None,
    term_b: Term | None = None,
    fused: bool | None = None,
    relation: int = SEPARATE,
) -> torch.Tensor:
    """``term_a.weight * mean(f_a(a)) + term_b.weight * mean(f_b(b))`` on checked critic outputs (B,) or (B, 1),
    or relativistic as ``relation`` says (:mod:`fastgan.kernels.loss_terms`: PAIRED is ``term_a`` of ``a - b``
    alone; AVERAGE shifts ``a`` by ``mean(b)`` and ``b`` by ``mean(a)``).

    ``fused``: the Triton kernels when True, plain differentiable PyTorch ops from the same terms when False
    (what ``torch.compile`` and ``torch.func`` trace), the backend rule's choice for ``a``'s device when None.
    Returns a 0-dim fp32 tensor (fp64 if an input is fp64).
    """
    if fused or (fused is None and uses_triton(a.device)):
        return _Loss.apply(a, b, term_a, term_b, relation)
    # The eager path: the same terms as ops autograd records. At the sizes losses have (a batch of scores), the
    # Python backward of an autograd.Function would cost more than the whole loss.
    acc = accumulator_dtype(a.dtype, None if b is None else b.dtype)
    a = a if a.dtype == acc else a.to(acc)
    if b is None:
        return _scaled(_one_term_mean(a, term_a), term_a.weight)
    b = b if b.dtype == acc else b.to(acc)
    if relation == PAIRED:
        return _scaled(_one_term_mean(a.reshape(-1) - b.reshape(-1), term_a), term_a.weight)
    if relation == AVERAGE:
        a, b = a - b.mean(), b - a.mean()
    if a.shape == b.shape and term_a.kind == SQUARE == term_b.kind and term_a.weight == term_b.weight:
        # LSGAN: w (mean((a - p_a)^2) + mean((b - p_b)^2)) is 2w times the mean squared error of both batches at
        # once (2 recorded ops instead of 7).
        targets = torch.cat([torch.full_like(a, term_a.param), torch.full_like(b, term_b.param)])
        return _scaled(F.mse_loss(torch.cat([a, b]), targets), 2 * term_a.weight)
    (values_a, c_a), (values_b, c_b) = _term_values(a, term_a), _term_values(b, term_b)
    c_a, c_b = c_a * term_a.weight, c_b * term_b.weight
    if a.shape == b.shape:
        # One reduction of c_a f_a(a) + c_b f_b(b) instead of two means (WGAN: 2 recorded ops, the reference's form 3).
        combined, c = _combined(values_a, c_a, values_b, c_b)
        return _scaled(combined.mean(), c)
    return _scaled(*_combined(values_a.mean(), c_a, values_b.mean(), c_b))


def _loss(
    name_a: str,
    a: torch.Tensor,
    term_a: Term,
    name_b: str | None = None,
    b: torch.Tensor | None = None,
    term_b: Term | None = None,
) -> torch.Tensor:
    """Validate the critic outputs, then compute the loss of the terms on the backend picked for their device."""
    _input_checks.critic_output(name_a, a)
    if b is not None:
        _input_checks.critic_output(name_b, b)
        _input_checks.same_device(name_b, b, name_a, a)
    return loss_of_terms(a, term_a, b, term_b)


# Terms that take no user parameter, built once.
_MINUS_MEAN = Term(LINEAR, weight=-1.0)
_MEAN = Term(LINEAR)
_BCE_LABEL_1 = Term(LOGISTIC, 1.0)
_BCE_LABEL_0 = Term(LOGISTIC, 0.0)
_HINGE_REAL = Term(HINGE, -1.0)
_HINGE_FAKE = Term(HINGE, 1.0)


# RpGAN's critic term on D(real) - D(fake): softplus(-x) = softplus(D(fake) - D(real)); its generator's softplus(x).
_PAIR_CRITIC = Term(LOGISTIC, 1.0)
_PAIR_GENERATOR = Term(LOGISTIC, 0.0)
# RaGAN's halves: cross-entropy of the shifted real scores with label 1 (critic) or 0 (generator), and the mirror.
_HALF_LABEL_1 = Term(LOGISTIC, 1.0, 0.5)
_HALF_LABEL_0 = Term(LOGISTIC, 0.0, 0.5)


LOSS_NAMES = ("wgan", "lsgan", "ns", "hinge", "rpgan", "ragan")
RELATIVISTIC = ("rpgan", "ragan")  # the losses whose generator side scores the real batch too


class LossTerms(NamedTuple):
    """A loss as the fused kernel computes it (:mod:`fastgan.kernels.loss_terms`): the critic's term on real and on
    fake scores (PAIRED: ``real`` alone, of real minus fake scores, and ``fake`` None), the generator's term on
    fake scores (PAIRED: None), its term on real scores for a relativistic loss (PAIRED: of real minus fake), and
    how real and fake scores relate."""

    real: Term
    fake: Term | None
    generator: Term | None
    generator_real: Term | None = None
    relation: int = SEPARATE

    @property
    def relativistic(self) -> bool:
        """Whether the generator's side takes the real scores too."""
        return self.relation != SEPARATE


def _smoothing(label_smoothing: object) -> float:
    value = _input_checks.finite_real("label_smoothing", label_smoothing)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {value}")
    return value


def _real_label(label_smoothing: float) -> Term:
    """The discriminator's cross-entropy term on real logits, with target ``1 - label_smoothing``."""
    return _BCE_LABEL_1 if label_smoothing == 0.0 else Term(LOGISTIC, 1.0 - label_smoothing)


_RELATIVISTIC_TERMS = {
    "rpgan": LossTerms(_PAIR_CRITIC, None, None, _PAIR_GENERATOR, PAIRED),
    "ragan": LossTerms(_HALF_LABEL_1, _HALF_LABEL_0, _HALF_LABEL_1, _HALF_LABEL_0, AVERAGE),
}


def terms_of_loss(
    name: str, lsgan_targets: tuple[float, float, float] = (0.0, 1.0, 1.0), label_smoothing: float = 0.0
) -> LossTerms:
    """The terms of loss ``name`` (one of :data:`LOSS_NAMES`), critic and generator sides.

    ``lsgan_targets``: LSGAN's (a, b, c), fake and real targets of the critic and the generator's target.
    ``label_smoothing``: the ``"ns"`` discriminator's real target is ``1 - label_smoothing`` (one-sided).
    """
    label_smoothing = _smoothing(label_smoothing)
    if label_smoothing and name != "ns":
        raise ValueError(f"label_smoothing applies to the ns loss only, got loss {name!r}")
    if name == "wgan":
        return LossTerms(_MINUS_MEAN, _MEAN, _MINUS_MEAN)
    if name == "lsgan":
        if not isinstance(lsgan_targets, (tuple, list)) or len(lsgan_targets) != 3:
            raise ValueError(f"lsgan_targets must be three numbers (a, b, c), got {lsgan_targets!r}")
        a, b, c = (_input_checks.finite_real(f"lsgan_targets' {n}", v) for n, v in zip("abc", lsgan_targets))
        return LossTerms(Term(SQUARE, b, 0.5), Term(SQUARE, a, 0.5), Term(SQUARE, c, 0.5))
    if name == "ns":
        return LossTerms(_real_label(label_smoothing), _BCE_LABEL_0, _BCE_LABEL_1)
    if name == "hinge":
        return LossTerms(_HINGE_REAL, _HINGE_FAKE, _MINUS_MEAN)
    if name in _RELATIVISTIC_TERMS:
        return _RELATIVISTIC_TERMS[name]
    raise ValueError(f"loss must be one of {LOSS_NAMES}, got {name!r}")


def critic_loss(terms: LossTerms, real_out: torch.Tensor, fake_out: torch.Tensor, fused: bool | None = None):
    """The critic side of ``terms`` on checked real and fake scores (B,) or (B, 1); ``fused`` as in
    :func:`loss_of_terms`."""
    return loss_of_terms(real_out, terms.real, fake_out, terms.fake, fused, terms.relation)


def generator_loss(
    terms: LossTerms, fake_out: torch.Tensor, real_out: torch.Tensor | None = None, fused: bool | None = None
):
    """The generator side of ``terms`` on checked fake scores, and the real ones for a relativistic loss."""
    if not terms.relativistic:
        assert terms.generator is not None
        return loss_of_terms(fake_out, terms.generator, fused=fused)
    assert terms.generator_real is not None and real_out is not None
    return loss_of_terms(real_out, terms.generator_real, fake_out, terms.generator, fused, terms.relation)


def wgan_critic_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss ``mean(D(fake)) - mean(D(real))`` (minimised by the critic)."""
    return _loss("real_out", real_out, _MINUS_MEAN, "fake_out", fake_out, _MEAN)


def wgan_generator_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss ``-mean(D(fake))``."""
    return _loss("fake_out", fake_out, _MINUS_MEAN)


def lsgan_discriminator_loss(
    real_out: torch.Tensor, fake_out: torch.Tensor, a: float = 0.0, b: float = 1.0
) -> torch.Tensor:
    """LSGAN discriminator loss ``0.5 E[(D(x) - b)^2] + 0.5 E[(D(G(z)) - a)^2]`` (fake target a, real b).

    Equal to the reference's ``(MSELoss(D(real), 1) + MSELoss(D(fake), 0)) / 2`` for a = 0, b = 1.
    """
    a = _input_checks.finite_real("a", a)
    b = _input_checks.finite_real("b", b)
    return _loss("real_out", real_out, Term(SQUARE, b, 0.5), "fake_out", fake_out, Term(SQUARE, a, 0.5))


def lsgan_generator_loss(fake_out: torch.Tensor, c: float = 1.0, *, half: bool = True) -> torch.Tensor:
    """LSGAN generator loss ``0.5 E[(D(G(z)) - c)^2]``.

    ``half=False`` drops the 0.5 and gives the reference's ``MSELoss(D(fake), 1)`` exactly (twice the paper's loss,
    so twice its gradients: with Adam this changes almost nothing, with SGD it doubles the step).
    """
    c = _input_checks.finite_real("c", c)
    if not isinstance(half, bool):
        raise TypeError(f"half must be a bool, got {type(half).__name__}")
    weight = 0.5 if half else 1.0
    return _loss("fake_out", fake_out, Term(SQUARE, c, weight))


def ns_discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, *, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Standard GAN discriminator loss from logits: ``BCE(D(x), 1 - s) + BCE(D(G(z)), 0)``, numerically stable.

    ``label_smoothing`` s in [0, 1): one-sided label smoothing (Salimans et al., 2016; 0.1 is usual), the real
    samples' target lowered to ``1 - s`` and the fake ones' left at 0.
    """
    real_term = _real_label(_smoothing(label_smoothing))
    return _loss("real_logits", real_logits, real_term, "fake_logits", fake_logits, _BCE_LABEL_0)


def ns_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``BCE(D(G(z)), 1) = E[softplus(-D(G(z)))]``."""
    return _loss("fake_logits", fake_logits, _BCE_LABEL_1)


def hinge_discriminator_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]``."""
    return _loss("real_out", real_out, _HINGE_REAL, "fake_out", fake_out, _HINGE_FAKE)


def hinge_generator_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss ``-E[D(G(z))]``."""
    return wgan_generator_loss(fake_out)


def _relativistic(name: str, real_out: torch.Tensor, fake_out: torch.Tensor, side: str) -> torch.Tensor:
    """Loss ``name``'s critic or generator side on checked real and fake scores."""
    terms = _RELATIVISTIC_TERMS[name]
    _input_checks.critic_output("real_out", real_out)
    _input_checks.critic_output("fake_out", fake_out)
    _input_checks.same_device("fake_out", fake_out, "real_out", real_out)
    if terms.relation == PAIRED and real_out.shape[0] != fake_out.shape[0]:
        raise ValueError(
            f"real_out and fake_out are paired by position: batch sizes {real_out.shape[0]} and {fake_out.shape[0]} "
            "differ"
        )
    if side == "critic":
        return critic_loss(terms, real_out, fake_out)
    return generator_loss(terms, fake_out, real_out)


def rpgan_discriminator_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """Relativistic pairing (RpGAN, R3GAN's loss) for the critic: ``mean_i softplus(D(fake_i) - D(real_i))``.

    ``real_out``, ``fake_out``: scores (B,) or (B, 1) of one batch size, paired by position (any float dtype).
    Returns the 0-dim fp32 loss (fp64 for fp64 scores).
    """
    return _relativistic("rpgan", real_out, fake_out, "critic")


def rpgan_generator_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """Relativistic pairing for the generator: ``mean_i softplus(D(real_i) - D(fake_i))``; as
    :func:`rpgan_discriminator_loss` (``real_out`` usually detached: the generator moves only the fake scores)."""
    return _relativistic("rpgan", real_out, fake_out, "generator")


def ragan_discriminator_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """Relativistic average (RaGAN, ESRGAN's form) for the critic:
    ``(BCE(D(x) - mean D(G(z)), 1) + BCE(D(G(z)) - mean D(x), 0)) / 2`` of logits.

    ``real_out``, ``fake_out``: scores (B,) or (B, 1), batch sizes may differ. Returns the 0-dim fp32 loss.
    """
    return _relativistic("ragan", real_out, fake_out, "critic")


def ragan_generator_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """Relativistic average for the generator, the critic's labels swapped:
    ``(BCE(D(x) - mean D(G(z)), 0) + BCE(D(G(z)) - mean D(x), 1)) / 2``."""
    return _relativistic("ragan", real_out, fake_out, "generator")


__all__ = [
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "ns_discriminator_loss",
    "ns_generator_loss",
    "ragan_discriminator_loss",
    "ragan_generator_loss",
    "rpgan_discriminator_loss",
    "rpgan_generator_loss",
    "wgan_critic_loss",
    "wgan_generator_loss",
]

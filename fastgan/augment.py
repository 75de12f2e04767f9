"""Differentiable augmentation: DiffAugment's ops (Zhao et al., 2020) as one fused op, each applied to a sample
with a probability that ADA's rule (Karras et al., 2020) can steer.

``augment(x)`` changes each image of a (B, C, H, W) batch by its own random parameters: ``color`` (brightness
``x + (u - 0.5)``, saturation ``(x - mean_c x) * 2u + mean_c x``, contrast ``(x - mean x) * (u + 0.5) + mean x``),
``translation`` (by up to 1/8 of the size in each direction, integer pixels, zero fill) and ``cutout`` (a zeroed
rectangle of half the size, anywhere it overlaps the image), in that order. The op is affine in x, so its
gradient is an explicit adjoint (one fused launch, two with the colour ops) and its double backward the op
itself: penalties through the augmentation (R1 at un-augmented reals, StyleGAN2-ADA's) need no more.

A sample's parameters are ten numbers, one row of ``params`` (B, 10) fp32 (:func:`augment_params`): seven
uniforms on [0, 1) that set the ops and three flags that say which groups apply (see
:data:`fastgan.kernels.augment.PARAMS`). Drawn on the device in one call, they make a step with augmentation
capturable in a CUDA graph; passing one ``params`` to two batches augments them alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from . import _input_checks
from ._rows import empty_rows_like
from .backend import launchers, uses_triton
from .kernels.accumulator import accumulator_dtype

OPS = ("color", "translation", "cutout")  # in the order they apply
N_PARAMS = 10
TRANSLATION_RATIO = 0.125  # DiffAugment's: the largest shift, a fraction of the size
CUTOUT_RATIO = 0.5  # DiffAugment's: the cutout's size, a fraction of the image's
ADA_TARGET = 0.6  # ADA's target for E[sign(D(augmented real))]
ADA_INTERVAL = 4  # updates between adjustments of p
ADA_SPEED = 500_000  # real images shown for p to move by 1 (ADA's 500 kimg)


@dataclass(frozen=True)
class Policy:
    """Which ops apply: the colour ops or not, and the translation and cutout ratios (0: that op is off)."""

    color: bool
    translation: float
    cutout: float

    def sizes(self, height: int, width: int) -> tuple[int, int, int, int]:
        """The largest shifts (rows, cols) and the cutout's (height, width) for an H x W image."""
        return (
            int(height * self.translation + 0.5),
            int(width * self.translation + 0.5),
            int(height * self.cutout + 0.5),
            int(width * self.cutout + 0.5),
        )


def policy_of(
    policy: object, translation_ratio: object = TRANSLATION_RATIO, cutout_ratio: object = CUTOUT_RATIO
) -> Policy:
    """The :class:`Policy` of a comma-separated list of :data:`OPS` (in that order, each at most once), or
    ``TypeError``/``ValueError`` naming the argument."""
    if isinstance(policy, Policy):
        return policy
    if not isinstance(policy, str):
        raise TypeError(f"policy must be a str such as 'color,translation,cutout', got {type(policy).__name__}")
    names = [name.strip() for name in policy.split(",") if name.strip()]
    unknown = [name for name in names if name not in OPS]
    if unknown or not names:
        raise ValueError(f"policy must name some of {', '.join(OPS)} (comma-separated), got {policy!r}")
    if names != sorted(set(names), key=OPS.index):
        raise ValueError(f"policy must list its ops once each in the order {','.join(OPS)}, got {policy!r}")
    ratios = []
    for name, ratio in (("translation_ratio", translation_ratio), ("cutout_ratio", cutout_ratio)):
        value = _input_checks.non_negative_real(name, ratio)
        if value > 1:
            raise ValueError(f"{name} must be in [0, 1], got {ratio!r}")
        ratios.append(value)
    return Policy("color" in names, ratios[0] * ("translation" in names), ratios[1] * ("cutout" in names))


def _probability(probability: object, device: torch.device) -> float | torch.Tensor:
    if isinstance(probability, torch.Tensor):
        if probability.dim() != 0 or not probability.is_floating_point():
            raise ValueError(
                f"probability must be a float or a 0-dim float tensor, got shape {tuple(probability.shape)}"
            )
        if probability.device != device:
            raise ValueError(f"probability is on {probability.device} but x is on {device}")
        return probability
    value = _input_checks.non_negative_real("probability", probability)
    if value > 1:
        raise ValueError(f"probability must be in [0, 1], got {probability!r}")
    return value


def _images(name: str, x: object) -> torch.Tensor:
    x = _input_checks.batched(name, _input_checks.float_tensor(name, x))
    if x.dim() != 4:
        raise ValueError(f"{name} must be a (B, C, H, W) batch of images, got shape {tuple(x.shape)}")
    return x


def augment_params(
    x: torch.Tensor, *, probability: float | torch.Tensor = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random augmentation parameters for the batch ``x`` (B, ...): (B, 10) fp32 on its device, drawn in one
    ``torch.rand((B, 10))`` call from ``generator`` (default: the device's), the last three columns turned
    into flags ``u < probability`` (each group of ops applies to a sample with that probability; ADA's p).

    ``probability``: a float in [0, 1] or a 0-dim float tensor on ``x``'s device (read on the device: no host
    sync, so a captured graph sees its later values).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    _input_checks.batched("x", x)
    p = _probability(probability, x.device)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return _draw(x.shape[0], x.device, p, generator)


def _draw(rows: int, device: torch.device, probability: float | torch.Tensor, generator=None) -> torch.Tensor:
    u = torch.rand((rows, N_PARAMS), device=device, generator=generator)
    if isinstance(probability, float) and probability == 1.0:
        u[:, 7:] = 1.0  # u < 1 always: no comparison to launch
    else:
        u[:, 7:] = (u[:, 7:] < probability).float()
    return u


def _params(params: object, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(params, torch.Tensor):
        raise TypeError(f"params must be a torch.Tensor, got {type(params).__name__}")
    if params.dtype != torch.float32:
        raise TypeError(f"params must be float32 (from augment_params), got {params.dtype}")
    if params.shape != (x.shape[0], N_PARAMS):
        raise ValueError(
            f"params must have shape ({x.shape[0]}, {N_PARAMS}) for x of batch {x.shape[0]}, got {tuple(params.shape)}"
        )
    _input_checks.same_device("params", params, "x", x)
    return params.detach().contiguous()


# The eager path: plain differentiable PyTorch (the traced steps differentiate it), the kernels' map of params.


def _index(u: torch.Tensor, n: int) -> torch.Tensor:
    """``floor(u * n)`` in fp32, as the kernel computes it: below n for every u < 1."""
    return torch.floor(u * n).long()


def _geometry(params: torch.Tensor, height: int, width: int, sizes: tuple[int, int, int, int]):
    shift_h, shift_w, cut_h, cut_w = sizes
    move = params[:, 8] != 0
    zero = torch.zeros((), dtype=torch.long, device=params.device)
    t_h = torch.where(move, _index(params[:, 3], 2 * shift_h + 1) - shift_h, zero)
    t_w = torch.where(move, _index(params[:, 4], 2 * shift_w + 1) - shift_w, zero)
    cut = params[:, 9] != 0
    top = torch.where(cut, _index(params[:, 5], height + 1 - cut_h % 2) - cut_h // 2, zero + height)
    left = _index(params[:, 6], width + 1 - cut_w % 2) - cut_w // 2
    return t_h, t_w, top, left


def _shift(x: torch.Tensor, t_h: torch.Tensor, t_w: torch.Tensor) -> torch.Tensor:
    """``out[b, :, i, j] = x[b, :, i + t_h[b], j + t_w[b]]``, 0 where that falls outside the image."""
    batch, channels, height, width = x.shape
    rows = torch.arange(height, device=x.device).view(1, height, 1) + t_h.view(batch, 1, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, width) + t_w.view(batch, 1, 1)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    index = rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1)
    index = index.view(batch, 1, height * width).expand(batch, channels, height * width)
    moved = x.reshape(batch, channels, height * width).gather(2, index).view(x.shape)
    return torch.where(inside.unsqueeze(1), moved, torch.zeros((), dtype=x.dtype, device=x.device))


def _kept(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, cut_h: int, cut_w: int) -> torch.Tensor:
    """(B, 1, H, W): 1 outside each sample's cutout, 0 inside, in ``x``'s dtype."""
    batch, _, height, width = x.shape
    rows = torch.arange(height, device=x.device).view(1, height, 1) - top.view(batch, 1, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, width) - left.view(batch, 1, 1)
    cut = (rows >= 0) & (rows < cut_h) & (cols >= 0) & (cols < cut_w)
    return (~cut).unsqueeze(1).to(x.dtype)


def _color(x: torch.Tensor, params: torch.Tensor, bias: bool) -> torch.Tensor:
    """Brightness, saturation and contrast in closed form: ``k s x + (k - k s) mean_c x + (1 - k) mean x +
    beta``; without ``bias`` the linear part (no beta), which is symmetric (its own adjoint)."""
    on = params[:, 7] != 0

    def per_image(value: torch.Tensor, identity: float) -> torch.Tensor:
        # In fp32 like the kernels and the reference, then in x's dtype.
        return torch.where(on, value, identity).to(x.dtype).view(-1, 1, 1, 1)

    s, k = per_image(2.0 * params[:, 1], 1.0), per_image(params[:, 2] + 0.5, 1.0)
    out = k * s * x + (k - k * s) * x.mean(dim=1, keepdim=True) + (1.0 - k) * x.mean(dim=(1, 2, 3), keepdim=True)
    if bias:
        out = out + per_image(params[:, 0] - 0.5, 0.0)
    return out


def augment_torch(
    x: torch.Tensor, params: torch.Tensor, policy: Policy, adjoint: bool = False, bias: bool = True
) -> torch.Tensor:
    """The augmentation of checked images (B, C, H, W) in plain PyTorch, computed in fp32 (fp64 for fp64) and
    returned in ``x``'s dtype (contiguous): the forward ``W S_t (L x + beta)``, or its ``adjoint``
    ``L S_-t W g`` (see :mod:`fastgan.kernels.augment`); ``bias=False`` leaves beta out."""
    acc = accumulator_dtype(x.dtype)
    y = x.to(acc)
    sizes = policy.sizes(x.shape[2], x.shape[3])
    t_h, t_w, top, left = _geometry(params, x.shape[2], x.shape[3], sizes)
    cut_h, cut_w = sizes[2:]
    if adjoint:
        y = _shift(y * _kept(y, top, left, cut_h, cut_w), -t_h, -t_w)
        if policy.color:
            y = _color(y, params, False)
    else:
        if policy.color:
            y = _color(y, params, bias)
        y = _shift(y, t_h, t_w) * _kept(y, top, left, cut_h, cut_w)
    return y.to(x.dtype)


def _run(x: torch.Tensor, params: torch.Tensor, policy: Policy, adjoint: bool, bias: bool, fused: bool):
    if not fused:
        out = augment_torch(x, params, policy, adjoint, bias)
        return out.contiguous(memory_format=torch.channels_last) if _channels_last(x) else out
    sizes = policy.sizes(x.shape[2], x.shape[3])
    return launchers("augment").augment_apply(x, params, empty_rows_like(x), sizes, policy.color, adjoint, bias)


def _channels_last(x: torch.Tensor) -> bool:
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


class _Augmentation(torch.autograd.Function):
    """The augmentation (or its adjoint) with fixed parameters: the Triton kernels when ``fused``, else the eager
    path. Its backward is the adjoint's own Function (the forward's for the adjoint), so every derivative order
    is one more call."""

    @staticmethod
    def forward(ctx: Any, x, params, policy: Policy, adjoint: bool, bias: bool, fused: bool) -> torch.Tensor:
        ctx.save_for_backward(params)
        ctx.policy, ctx.adjoint, ctx.fused = policy, adjoint, fused
        return _run(x, params, policy, adjoint, bias, fused)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):
        (params,) = ctx.saved_tensors
        grad = _Augmentation.apply(grad_out, params, ctx.policy, not ctx.adjoint, False, ctx.fused)
        return grad, None, None, None, None, None


def augmented(x: torch.Tensor, params: torch.Tensor, policy: Policy, fused: bool) -> torch.Tensor:
    """:func:`augment` of checked images and parameters, with the backend chosen (``fused``: the kernels)."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return _run(x, params, policy, False, True, fused)
    out: torch.Tensor = _Augmentation.apply(x, params, policy, False, True, fused)
    return out


def augment(
    x: torch.Tensor,
    policy: str | Policy = "color,translation,cutout",
    *,
    params: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    probability: float | torch.Tensor = 1.0,
    translation_ratio: float = TRANSLATION_RATIO,
    cutout_ratio: float = CUTOUT_RATIO,
) -> torch.Tensor:
    """DiffAugment of a batch of images, each with its own random parameters.

    Args:
        x: (B, C, H, W) fp32, fp16, bf16 or fp64 images (any strides: NCHW, channels_last, views).
        policy: the ops, comma-separated, in this order: ``"color"``, ``"translation"``, ``"cutout"``.
        params: (B, 10) fp32 parameters from :func:`augment_params` (the same ones augment two batches alike);
            None draws them with ``generator`` and ``probability``.
        generator: the ``torch.Generator`` to draw from (default: the device's).
        probability: each group of ops applies to a sample with this probability (ADA's p): a float in [0, 1]
            or a 0-dim tensor on ``x``'s device.
        translation_ratio: the largest shift as a fraction of the height and width (DiffAugment's 1/8).
        cutout_ratio: the cutout's height and width as a fraction of the image's (DiffAugment's 1/2).

    Returns:
        (B, C, H, W) of ``x``'s dtype and sample layout, computed in fp32 (fp64 for fp64); differentiable with
        respect to ``x`` to any order (not to ``params``).
    """
    x = _images("x", x)
    chosen = policy_of(policy, translation_ratio, cutout_ratio)
    if params is None:
        params = augment_params(x, probability=probability, generator=generator)
    else:
        if generator is not None:
            raise ValueError("give params or generator, not both (params are already drawn)")
        params = _params(params, x)
    return augmented(x, params, chosen, uses_triton(x.device))


class Augment:
    """The augmentation a step applies before its critic: a policy, and the probability ``p`` with which each group
    of ops applies to a sample, fixed or adapted by ADA's rule.

    Args:
        policy: as in :func:`augment` (or a :class:`Policy`).
        probability: the initial p, in [0, 1] (1: DiffAugment; ADA starts from 0).
        target: ADA's target for ``E[sign(D(augmented real))]`` (0.6 in its paper), or None to keep p fixed.
            Every ``interval`` critic updates p moves by ``sign(r - target) * batch * interval / speed``, ``r``
            the updates' mean sign, and stays in [0, 1]; all on the device, without host syncs.
        interval: critic updates between adjustments (ADA's 4).
        speed: real images shown for p to move by 1 (ADA's 500k).
        translation_ratio, cutout_ratio: as in :func:`augment`.

    ``probability`` is a 0-dim fp32 tensor (on the samples' device after the first use); ``state_dict()`` holds
    it and the signs gathered since the last adjustment, for checkpoints.
    """

    def __init__(
        self,
        policy: str | Policy = "color,translation,cutout",
        *,
        probability: float = 1.0,
        target: float | None = None,
        interval: int = ADA_INTERVAL,
        speed: float = ADA_SPEED,
        translation_ratio: float = TRANSLATION_RATIO,
        cutout_ratio: float = CUTOUT_RATIO,
    ):
        self.policy = policy_of(policy, translation_ratio, cutout_ratio)
        p = _probability(probability, torch.device("cpu"))
        if target is not None:
            target = _input_checks.finite_real("target", target)
            if not -1 <= target <= 1:
                raise ValueError(f"target must be in [-1, 1] (a mean sign), got {target!r}")
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval must be a positive int, got {interval!r}")
        self.target, self.interval = target, interval
        self.speed = _input_checks.positive_real("speed", speed)
        self.probability = torch.tensor(float(p))
        self._signs = torch.zeros(())
        self._seen = 0  # updates observed since the last adjustment (host-side count: no sync)

    @property
    def adaptive(self) -> bool:
        return self.target is not None

    def to(self, device: torch.device) -> None:
        """Keep p on ``device`` (done before a step first draws: a captured graph holds p's address)."""
        if self.probability.device != device:
            self.probability = self.probability.to(device)
            self._signs = self._signs.to(device)

    def params(self, x: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """(rows, 10) parameters (default: one per sample of ``x``) drawn on ``x``'s device with p."""
        self.to(x.device)
        return _draw(x.shape[0] if rows is None else rows, x.device, self.probability)

    def observe(self, real_sign: torch.Tensor, batch: int) -> None:
        """Count one critic update whose augmented reals had mean score sign ``real_sign`` (0-dim, on the
        device) over ``batch`` samples; every ``interval`` of them adjust p (when adaptive)."""
        if not self.adaptive:
            return
        self.to(real_sign.device)
        self._signs += real_sign.detach().float()
        self._seen += 1
        if self._seen < self.interval:
            return
        step = batch * self.interval / self.speed
        with torch.no_grad():
            self.probability.add_(torch.sign(self._signs / self._seen - self.target) * step).clamp_(0.0, 1.0)
            self._signs.zero_()
        self._seen = 0

    def state_dict(self) -> dict[str, Any]:
        return {"probability": self.probability.detach().cpu(), "signs": self._signs.cpu(), "seen": self._seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.probability.device
        self.probability.copy_(state["probability"].to(device))
        self._signs.copy_(state["signs"].to(device))
        self._seen = int(state["seen"])


def augmentation(value: object) -> Augment | None:
    """A step's ``augment`` argument as an :class:`Augment` (a policy string makes a fixed one), or None."""
    if value is None or isinstance(value, Augment):
        return value
    if isinstance(value, str):
        return Augment(value)
    raise TypeError(f"augment must be a policy str, a fastgan.Augment or None, got {type(value).__name__}")

"""Input checks run before any kernel: each error names the argument and leaves the inputs untouched."""

from __future__ import annotations

import math
from numbers import Real

import torch

from .kernels._preconditions import FLOATS, same_device, same_shape

__all__ = [
    "alpha",
    "batched",
    "critic_and_scaler",
    "critic_output",
    "critic_scores",
    "finite_real",
    "float_tensor",
    "labels",
    "non_negative_real",
    "pair",
    "penalty_shape",
    "per_sample",
    "positive_real",
    "same_device",
    "same_dtype",
    "same_shape",
]


def float_tensor(name: str, x: object) -> torch.Tensor:
    """``x`` if it is a tensor of a dtype the kernels take (fp32, fp16, bf16, fp64), else ``TypeError``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOATS:
        raise TypeError(
            f"{name} must have a floating-point dtype (float32, float16, bfloat16 or float64), got {x.dtype}"
        )
    return x


def batched(name: str, x: torch.Tensor) -> torch.Tensor:
    """``x`` if it has a non-empty leading batch dimension and no empty sample, else ``ValueError``."""
    if x.dim() == 0:
        raise ValueError(f"{name} must have a leading batch dimension, got a 0-dim tensor")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has an empty batch (shape {tuple(x.shape)})")
    if x.numel() == 0:
        raise ValueError(f"{name} has empty samples (shape {tuple(x.shape)})")
    return x


def same_dtype(name: str, x: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if x.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but {ref_name} has dtype {ref.dtype}")


def per_sample(name: str, alpha: torch.Tensor, batch: int) -> None:
    """``alpha`` must hold one value per sample: shape (B,) or (B, 1, ..., 1)."""
    shape = tuple(alpha.shape)
    if alpha.dim() == 0 or shape[0] != batch or any(s != 1 for s in shape[1:]):
        raise ValueError(f"{name} must have shape ({batch},) or ({batch}, 1, ...), got {shape}")


def finite_real(name: str, value: object) -> float:
    """``value`` as a float if it is a finite real number (not a bool), else ``TypeError``/``ValueError``."""
    cls = value.__class__
    # float and int first: the ABC check of Real runs Python code, at every call of every op taking a weight or bound
    if cls is not float and cls is not int and (cls is bool or not isinstance(value, Real)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def non_negative_real(name: str, value: object) -> float:
    """``value`` as a float if it is a finite real number >= 0, else ``TypeError``/``ValueError``."""
    value = finite_real(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def positive_real(name: str, value: object) -> float:
    """``value`` as a float if it is a finite real number > 0, else ``TypeError``/``ValueError``."""
    value = finite_real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def critic_output(name: str, x: object) -> torch.Tensor:
    """``x`` if it is a non-empty floating (B,) or (B, 1) tensor of critic outputs."""
    float_tensor(name, x)
    if not (x.dim() == 1 or (x.dim() == 2 and x.shape[1] == 1)):
        raise ValueError(f"{name} must have shape (B,) or (B, 1), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has an empty batch")
    return x


def critic_scores(scores: object, batch: int, critic: object = None) -> torch.Tensor:
    """``scores`` if the critic gave one floating score per sample of a batch of ``batch``: (B,) or (B, 1); a
    critic with an int attribute ``pack`` > 1 scores groups of that many samples (PacGAN), B / pack scores.

    A scalar (``D(x).mean()``) or several scores per sample would make a per-sample penalty or a loss silently
    mean something else.
    """
    if not isinstance(scores, torch.Tensor) or scores.dtype not in FLOATS:
        raise TypeError(
            f"the critic must return a floating-point tensor of scores, got "
            f"{scores.dtype if isinstance(scores, torch.Tensor) else type(scores).__name__}"
        )
    pack = getattr(critic, "pack", 1)
    rows = batch // pack if isinstance(pack, int) and pack > 1 and batch % pack == 0 else batch
    if not (scores.dim() == 1 or (scores.dim() == 2 and scores.shape[1] == 1)) or scores.shape[0] != rows:
        what = "sample" if rows == batch else f"group of {pack} samples"
        raise ValueError(
            f"the critic must return one score per {what}, shape ({rows},) or ({rows}, 1); it "
            f"returned shape {tuple(scores.shape)}"
        )
    return scores


def pair(real: object, fake: object, real_name: str = "real", fake_name: str = "fake") -> None:
    """Raise unless ``real`` and ``fake`` are non-empty floating (B, ...) tensors alike in shape, dtype, device."""
    batched(real_name, float_tensor(real_name, real))
    float_tensor(fake_name, fake)
    same_shape(fake_name, fake, real_name, real)
    same_dtype(fake_name, fake, real_name, real)
    same_device(fake_name, fake, real_name, real)


def alpha(alpha: object, real: torch.Tensor) -> torch.Tensor:
    """``alpha`` if it is a floating tensor of one weight per sample of ``real`` ((B,) or (B, 1, ..., 1)) on its
    device, else ``TypeError``/``ValueError`` naming it."""
    float_tensor("alpha", alpha)
    per_sample("alpha", alpha, real.shape[0])
    same_device("alpha", alpha, "real", real)
    return alpha


def labels(name: str, labels: object, samples: torch.Tensor) -> torch.Tensor:
    """``labels`` (detached) if it is a tensor with one row per sample of ``samples`` on their device, else
    ``TypeError``/``ValueError`` naming it."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() == 0 or labels.shape[0] != samples.shape[0]:
        raise ValueError(f"{name} must hold one label per sample ({samples.shape[0]}), got shape {tuple(labels.shape)}")
    same_device(name, labels, "the samples", samples)
    return labels.detach()


def critic_and_scaler(critic: object, scaler: object) -> None:
    """Raise unless ``critic`` is callable and ``scaler`` a ``torch.amp.GradScaler`` or None."""
    if not callable(critic):
        raise TypeError(f"critic must be callable, got {type(critic).__name__}")
    if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
        raise TypeError(f"scaler must be a torch.amp.GradScaler or None, got {type(scaler).__name__}")


def penalty_shape(center: object, one_sided: object) -> float:
    """Check the penalty's shape parameters; returns ``center`` as a float."""
    if not isinstance(one_sided, bool):
        raise TypeError(f"one_sided must be a bool, got {type(one_sided).__name__}")
    return finite_real("center", center)

"""Preconditions every launcher checks before it launches, so that a direct call (bypassing ``fastgan``'s own
checks) raises instead of reading or writing out of bounds, or rounding silently.

Plain PyTorch (no triton import). Errors name the argument: ``TypeError`` for a wrong type or dtype,
``ValueError`` for a wrong shape, layout or device.
"""

from __future__ import annotations

import math
import os

import torch

from ._strides import is_dense, same_sample_order, sample_is_dense

FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
# The clipping kernel compares in fp32: exact for these dtypes once the bound is rounded to them, not for fp64.
CLIPPING_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def environment(name: str) -> str | None:
    """``os.environ.get(name)``, read at every call and cheaply: every op reads the backend's variable, and
    ``os.environ.get`` raises and catches a ``KeyError`` inside when it is unset, as it is on most GPU runs.
    CPython's ``os.environ`` keeps its encoded items in a dict, in step with every change made through it; that
    dict answers in one C call."""
    items, key = getattr(os.environ, "_data", None), _ENCODED.get(name)
    if items is None or key is None:
        return os.environ.get(name)
    value = items.get(key)
    return None if value is None else os.environ.decodevalue(value)


# The variables read at every op, encoded as os.environ keeps them.
_ENCODED = (
    {name: os.environ.encodekey(name) for name in ("FASTGAN_BACKEND", "TRITON_INTERPRET")}
    if hasattr(os.environ, "encodekey")
    else {}
)


def runs_kernels(device: torch.device) -> bool:
    """Whether the Triton kernels can run on tensors of ``device``: CUDA, or the CPU under the interpreter."""
    return device.type == "cuda" or device.type == "cpu" and environment("TRITON_INTERPRET") not in (None, "", "0")


def tensor(name: str, t: object, dtypes: tuple[torch.dtype, ...] = FLOATS) -> torch.Tensor:
    """``t`` if it is a non-empty tensor of one of ``dtypes`` on a device the kernels run on."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name} must have dtype {' or '.join(map(str, dtypes))}, got {t.dtype}")
    if not runs_kernels(t.device):
        raise ValueError(
            f"{name} is on {t.device}: the kernels run on CUDA tensors (on CPU tensors only under TRITON_INTERPRET=1)"
        )
    if t.numel() == 0:
        raise ValueError(f"{name} is empty")
    return t


def same_shape(name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """``t`` has ``ref``'s shape."""
    if t.shape != ref.shape:
        raise ValueError(f"{name} has shape {tuple(t.shape)} but {ref_name} has shape {tuple(ref.shape)}")


def same_device(name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """``t`` lives on ``ref``'s device."""
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}")


def rows(name: str, t: object, dtypes: tuple[torch.dtype, ...] = FLOATS) -> torch.Tensor:
    """``t`` is a (B, ...) tensor whose samples are dense runs (contiguous, channels_last, batch-sliced)."""
    x = tensor(name, t, dtypes)
    if x.dim() == 0:
        raise ValueError(f"{name} must have a leading batch dimension")
    if not sample_is_dense(x):
        raise ValueError(
            f"{name} must have dense samples (contiguous, channels_last or batch-sliced), "
            f"got strides {x.stride()} for shape {tuple(x.shape)}"
        )
    return x


def rows_like(name: str, t: object, ref_name: str, ref: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    """``t`` has ``ref``'s shape, device and sample layout (and ``dtype``, default ``ref``'s)."""
    x = rows(name, t, (dtype or ref.dtype,))
    same_shape(name, x, ref_name, ref)
    same_device(name, x, ref_name, ref)
    if not same_sample_order(x, ref):
        raise ValueError(
            f"{name} orders a sample's elements differently from {ref_name} (strides {x.stride()} and {ref.stride()})"
        )


def vector(
    name: str, t: object, length: int, ref_name: str, ref: torch.Tensor, dtypes: tuple[torch.dtype, ...] = FLOATS
) -> None:
    """``t`` is a contiguous (length,) tensor on ``ref``'s device."""
    x = tensor(name, t, dtypes)
    if x.dim() != 1 or x.shape[0] != length or x.stride(0) != 1:
        raise ValueError(f"{name} must be a contiguous ({length},) tensor, got shape {tuple(x.shape)}")
    same_device(name, x, ref_name, ref)


def scalar(name: str, t: object, ref_name: str, ref: torch.Tensor) -> None:
    """``t`` is a one-element floating tensor on ``ref``'s device."""
    x = tensor(name, t)
    if x.numel() != 1:
        raise ValueError(f"{name} must hold one value, got shape {tuple(x.shape)}")
    same_device(name, x, ref_name, ref)


def interpolation(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> None:
    """The interpolation launchers': ``real`` and ``fake`` rows alike, ``alpha`` one weight per row."""
    rows("real", real)
    rows_like("fake", fake, "real", real)
    vector("alpha", alpha, real.shape[0], "real", real)


def clipping(tensors: list[torch.Tensor], clip_value: float) -> None:
    """The clipping launcher's: a non-empty list of dense tensors of one clipping dtype and device, and a finite
    ``clip_value`` > 0."""
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise ValueError("tensors must be a non-empty list of tensors")
    first = tensor("tensors[0]", tensors[0], CLIPPING_DTYPES)
    for i, t in enumerate(tensors):
        name = f"tensors[{i}]"
        tensor(name, t, (first.dtype,))
        same_device(name, t, "tensors[0]", first)
        if not is_dense(t):
            raise ValueError(f"{name} must be dense (one run of memory), got strides {t.stride()}")
    if not isinstance(clip_value, (int, float)) or not math.isfinite(clip_value) or clip_value <= 0:
        raise ValueError(f"clip_value must be a finite number > 0, got {clip_value!r}")

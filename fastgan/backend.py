"""Backend selection: which implementation runs a fused op.

``auto`` (the default) runs the Triton kernels on CUDA tensors and the eager PyTorch path on anything else.
``triton`` forces the kernels, also on CPU tensors, which is only possible under the Triton interpreter
(``TRITON_INTERPRET=1`` set before triton is imported): that is how the test suite runs every kernel without a
GPU. ``torch`` forces the eager path everywhere.

The choice comes from, in order: the innermost :func:`use_backend` context, the ``FASTGAN_BACKEND`` environment
variable (read on every call, so it can be changed at run time), then ``auto``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
from collections.abc import Iterator
from types import ModuleType

import torch

from .kernels._preconditions import environment, runs_kernels

BACKENDS = ("auto", "triton", "torch")
_forced: list[str] = []


def _check_name(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return name


def requested_backend() -> str:
    """The backend asked for now: the innermost :func:`use_backend`, else ``$FASTGAN_BACKEND``, else ``auto``."""
    if _forced:
        return _forced[-1]
    name = environment("FASTGAN_BACKEND")
    return _check_name(name.strip().lower() or "auto") if name else "auto"


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Force a backend (``"auto"``, ``"triton"`` or ``"torch"``) inside a ``with`` block."""
    _forced.append(_check_name(name))
    try:
        yield
    finally:
        _forced.pop()


@functools.cache
def triton_available() -> bool:
    """Whether the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


@functools.cache
def launchers(name: str) -> ModuleType:
    """The launcher module ``fastgan.kernels.<name>``, imported on first use: importing it needs triton, which a
    machine running only the PyTorch path may lack. Remembered, as an import statement in a function costs
    microseconds at every call."""
    return importlib.import_module(f"{__package__}.kernels.{name}")


def uses_triton(device: torch.device) -> bool:
    """Whether an op on tensors of ``device`` runs the Triton kernels under the current backend choice.

    Raises ``RuntimeError`` when ``triton`` is forced but cannot run there (no triton, or CPU tensors without
    the interpreter), rather than silently falling back.
    """
    backend = requested_backend()
    if backend == "torch":
        return False
    if backend == "auto":
        return device.type == "cuda" and triton_available()
    if not triton_available():
        raise RuntimeError("FASTGAN_BACKEND=triton but the triton package is not installed")
    if runs_kernels(device):
        return True
    raise RuntimeError(
        f"the triton backend cannot run on {device.type} tensors; on CPU set TRITON_INTERPRET=1 before importing triton"
    )

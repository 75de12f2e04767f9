"""Stand-ins for Triton's compiled kernels, so that fastgan's whole host path runs on a CPU and launches nothing.

Inside :func:`stand_in_launchers` every kernel of ``fastgan.kernels`` launches directly (as on a GPU once Triton has
compiled it) through a compiled kernel whose launcher does nothing: what is left of a call is fastgan's Python,
its checks, plans and direct launches, and the PyTorch calls around them (allocations, autograd). Only the
compiled launcher's own cost (a GPU measures it: ``benchmarks.launch_cost``) and the device's work are missing.
The launchers take CPU tensors only under ``TRITON_INTERPRET=1``, set before triton is imported.

:func:`python_calls` counts what one call of a function asks of the interpreter: Python function calls, calls of C
functions (builtins, PyTorch's C API) and lines of Python run. Unlike a time, the counts are the same on every
machine.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator
from typing import Any

from triton.runtime.jit import JITFunction

from fastgan import interpolation, kernels
from fastgan.kernels.launch import DirectKernel


class CompiledStandIn:
    """A compiled kernel whose launcher only counts its launches."""

    function = None
    packed_metadata = None

    def __init__(self) -> None:
        self.launches = 0

    def run(self, *args: Any) -> None:
        self.launches += 1


class _EveryKey(dict):
    """A kernel cache that holds the stand-in under every key: every launch is a direct one."""

    def __init__(self, compiled: CompiledStandIn):
        super().__init__()
        self.compiled = compiled

    def get(self, key: Any, default: Any = None) -> CompiledStandIn:
        return self.compiled


def _direct_kernels() -> Iterator[tuple[Any, str, DirectKernel]]:
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"{kernels.__name__}.{info.name}")
        for name, value in list(vars(module).items()):
            if isinstance(value, DirectKernel):
                yield module, name, value


@contextlib.contextmanager
def stand_in_launchers() -> Iterator[CompiledStandIn]:
    """Swap every kernel of ``fastgan.kernels`` for one that launches directly through the returned stand-in."""
    compiled = CompiledStandIn()
    # The drop-in interpolation remembers planned launches of the kernels being swapped: none kept either way.
    remembered = interpolation._LAUNCH_READY
    interpolation._LAUNCH_READY = {}
    swapped = []
    for module, name, kernel in _direct_kernels():
        fn = kernel.fn
        jit = fn if isinstance(fn, JITFunction) else JITFunction(fn.fn, **fn.kwargs)  # the interpreter's wraps it
        stand_in = DirectKernel(jit, direct=True, stream=lambda device: 0)
        stand_in._compiled = _EveryKey(compiled)
        swapped.append((module, name, kernel))
        setattr(module, name, stand_in)
    try:
        yield compiled
    finally:
        for module, name, kernel in swapped:
            setattr(module, name, kernel)
        interpolation._LAUNCH_READY = remembered


def python_calls(fn: Callable[[], object]) -> tuple[int, int, int]:
    """What one call of ``fn`` (itself excluded) asks of the interpreter: Python function calls, C function calls
    and lines of Python executed (a loop's every turn counted)."""
    counts = {"call": 0, "c_call": 0, "line": 0, "frames": 0}

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event in counts:
            counts[event] += 1

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if not counts["frames"]:  # fn's own frame: its lines are not counted, the frames it calls are
            counts["frames"] = 1
            return None
        return count_lines

    def count_lines(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            counts["line"] += 1
        return count_lines

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(None)
    return counts["call"] - 1, counts["c_call"] - 1, counts["line"]  # fn's frame, setprofile's call ending the count

"""Direct launches of compiled Triton kernels, under a key of fastgan's own.

At every ``kernel[grid](...)`` Triton binds the arguments, specializes each one, builds a string key of them
and the compile options, checks the kernel's globals and builds launch metadata before it launches. fastgan's
per-sample ops launch small kernels, for which that host work can cost more than the kernel does. A
:class:`DirectKernel` keeps the compiled kernel Triton returns from its first launch of each specialization
under a tuple of what Triton specializes on (the device; each tensor's dtype and 16-byte alignment; each
integer's width, and whether it is 1 or divisible by 16; each bool and float argument's type; the constexprs;
``num_warps`` and the debug knob) and launches it through the compiled kernel's own launcher.

Triton's own path runs on a miss, under the interpreter, while a launch hook is installed (profilers such as
proton use them), while ``torch.compile`` traces the call, with a Triton older than 3.4 (whose launchers take
other arguments) and for good for a kernel whose first direct launch is refused. A direct launch skips what
fastgan's kernels never need: pre-run hooks and the check that module globals a kernel read have not changed
since it was compiled.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import triton

_I32 = 1 << 31
_I64 = 1 << 63
_U64 = 1 << 64
_enabled = True


def set_direct_launches(enabled: bool) -> bool:
    """Turn direct launches on or off for every kernel (off: Triton's own path always); returns the old
    setting. For benchmarks and debugging: the results are the same either way."""
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    return previous


def _triton_launches_directly() -> bool:
    major, minor = (int(part) for part in triton.__version__.split(".")[:2])
    knobs = getattr(triton, "knobs", None)  # what the key and the hook check read
    runtime = getattr(knobs, "runtime", None)
    return (major, minor) >= (3, 4) and all(
        hasattr(runtime, name) for name in ("debug", "launch_enter_hook", "launch_exit_hook")
    )


def _hooks_installed() -> bool:
    runtime = triton.knobs.runtime
    return any(getattr(hook, "calls", hook) for hook in (runtime.launch_enter_hook, runtime.launch_exit_hook))


class DirectKernel:
    """A ``@triton.jit`` kernel launched as ``kernel[grid](*args, **constexprs, num_warps=...)``, through its
    compiled launcher once Triton has compiled the arguments' specialization.

    Non-constexpr parameters are passed by position and the constexprs by keyword, as Triton accepts them.
    ``direct`` overrides whether direct launches are possible (default: a compiled JIT function on Triton >=
    3.4); ``stream`` maps a CUDA device index to its current raw stream (default: Triton's driver's).
    """

    def __init__(self, fn: Any, direct: bool | None = None, stream: Callable[[int], int] | None = None):
        self.fn = fn
        self.direct = (
            direct
            if direct is not None
            else (isinstance(fn, triton.runtime.jit.JITFunction) and _triton_launches_directly())
        )
        self._stream = stream
        self._names = list(fn.arg_names)
        self._specs = (
            [(p.is_constexpr, not p.do_not_specialize, not p.do_not_specialize_on_alignment) for p in fn.params]
            if self.direct
            else []
        )
        self._compiled: dict[tuple[Any, ...], Any] = {}
        self._launched_directly = False

    def __getitem__(self, grid: Sequence[int]) -> Callable[..., None]:
        return lambda *args, **kwargs: self.launch(grid, args, kwargs)

    def key(self, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
        """The cache key of one launch, or None where only Triton's path can launch it (a keyword that is
        neither a constexpr nor ``num_warps``, a missing or repeated argument, an argument of another type
        than a tensor, None, bool, int or float, an integer Triton refuses).

        One flat tuple, every argument in a few items: it is built at every launch."""
        n = len(args)
        if n + len(kwargs) - ("num_warps" in kwargs) != len(self._names):
            return None
        parts = [triton.knobs.runtime.debug, kwargs.get("num_warps")]
        append = parts.append
        device = None
        for value, (is_constexpr, specialize, align) in zip(args, self._specs):
            if is_constexpr:
                return None
            cls = value.__class__
            if cls is int:
                # Triton's width (i32, i64, u64), then whether it is 1 or divisible by 16 where it specializes
                width = 0 if -_I32 <= value < _I32 else 4 if -_I64 <= value < _I64 else 8 if 0 <= value < _U64 else -1
                if width < 0:
                    return None
                append(width + ((1 if value == 1 else 2 if align and value % 16 == 0 else 3) if specialize else 0))
            elif isinstance(value, torch.Tensor):
                if device is None:
                    device = value.get_device()
                append(value.dtype)
                append(specialize and align and value.data_ptr() % 16 == 0)
            elif value is None or cls is bool or cls is float:
                append(cls)
            else:
                return None
        for name, (is_constexpr, _, _) in zip(self._names[n:], self._specs[n:]):
            if not is_constexpr or name not in kwargs:
                return None
            value = kwargs[name]
            append(value.__class__)  # Triton's key is a string: constexprs 1 and True differ
            append(value)
        if device is None:
            return None  # the device comes from the first tensor (the launchers make its device current)
        append(device)
        return tuple(parts)

    def launch(self, grid: Sequence[int], args: Sequence[object], kwargs: dict[str, object]) -> None:
        """Launch on ``grid`` (a tuple of 1 to 3 ints; anything else goes to Triton): directly on a hit, else
        through Triton, keeping what it compiled."""
        if not (self.direct and _enabled) or _hooks_installed() or torch.compiler.is_compiling():
            self.fn[grid](*args, **kwargs)  # under torch.compile: the call Dynamo knows how to trace
            return
        key = self.key(args, kwargs) if grid.__class__ is tuple else None  # a grid function: Triton's path
        compiled = self._compiled.get(key) if key is not None else None
        if compiled is None or key is None:
            compiled = self.fn[grid](*args, **kwargs)
            if key is not None and hasattr(compiled, "packed_metadata"):  # not an asynchronous compile's future
                self._compiled[key] = compiled
            return
        device = key[-1]
        if self._stream is None:
            self._stream = triton.runtime.driver.active.get_current_stream
        values = (*args, *(kwargs[name] for name in self._names[len(args) :]))
        try:
            run = compiled.run  # loads the module on first use, which also sets ``function``
            run(
                grid[0],
                grid[1] if len(grid) > 1 else 1,
                grid[2] if len(grid) > 2 else 1,
                self._stream(device),
                compiled.function,
                compiled.packed_metadata,
                None,
                None,
                None,
                *values,
            )
        except Exception as error:
            if self._launched_directly:
                raise
            # The first direct launch refused its arguments: a Triton whose launcher takes others. Its own
            # path from now on (which raises again if the launch itself is what fails).
            self.direct = False
            warnings.warn(
                f"{self.fn.__name__}: a direct launch failed ({error!r}); launching through Triton",
                RuntimeWarning,
                stacklevel=2,
            )
            self.fn[grid](*args, **kwargs)
            return
        self._launched_directly = True

    def cached(self) -> int:
        """How many compiled specializations this kernel launches directly."""
        return len(self._compiled)


def direct(fn: Any) -> DirectKernel:
    """Decorator for a ``@triton.jit`` function: launch it as a :class:`DirectKernel`."""
    return DirectKernel(fn)

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

Even that key costs a Python step per argument at every launch. A launcher that knows what its grid, integers and
constexprs depend on (a shape, strides, flags) calls :meth:`DirectKernel.planned` instead: the launch's
arguments after its pointers are built once per such plan key and kept with the compiled kernel (a
:class:`Planned` launch), so that a launch costs the plan key, the pointers' dtypes and alignments, and the
compiled launcher's own call.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import triton

from ._tiles import on_device

_I32 = 1 << 31
_I64 = 1 << 63
_U64 = 1 << 64
_enabled = True
_MAX_PLANS = 256


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


def _grid3(grid: Sequence[int]) -> tuple[int, int, int]:
    return (grid[0], grid[1] if len(grid) > 1 else 1, grid[2] if len(grid) > 2 else 1)


def _device_of(args: Sequence[Any]) -> Any:
    """The context making the first tensor argument's CUDA device current (Triton launches on the current one)."""
    for value in args:
        if isinstance(value, torch.Tensor):
            return on_device(value)
    return on_device(None)


def _hooks_installed() -> bool:
    runtime = triton.knobs.runtime
    enter, exit_ = runtime.launch_enter_hook, runtime.launch_exit_hook
    return bool(getattr(enter, "calls", enter) or getattr(exit_, "calls", exit_))


# The current CUDA device in one C call (``torch.cuda.current_device`` adds two Python calls that initialize CUDA,
# which a compiled kernel's launch already did).
_current_device = getattr(torch._C, "_cuda_getDevice", None) or torch.cuda.current_device


def _launch(
    run: Any,
    function: Any,
    metadata: Any,
    stream: Callable[[int], int],
    device: int,
    grid3: tuple[int, int, int],
    values: Sequence[Any],
) -> None:
    """A compiled kernel's own launcher called on ``device``'s current stream, made current where it is not."""
    if device >= 0 and device != _current_device():
        with torch.cuda.device(device):
            run(*grid3, stream(device), function, metadata, None, None, None, *values)
    else:
        run(*grid3, stream(device), function, metadata, None, None, None, *values)


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
        self._plans: dict[tuple[Any, ...], Planned] = {}
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
            with _device_of(args):
                self.fn[grid](*args, **kwargs)  # under torch.compile: the call Dynamo knows how to trace
            return
        key = self.key(args, kwargs) if grid.__class__ is tuple else None  # a grid function: Triton's path
        compiled = self._compiled.get(key) if key is not None else None
        if compiled is None or key is None:
            self._through_triton(grid, args, kwargs, key)
            return
        values = (*args, *(kwargs[name] for name in self._names[len(args) :]))
        self._run(compiled, _grid3(grid), key[-1], values, grid, args, kwargs)

    def _through_triton(
        self, grid: Any, args: Sequence[Any], kwargs: dict[str, Any], key: tuple[Any, ...] | None
    ) -> None:
        """Triton's own launch, keeping what it compiled under ``key`` (None: keep nothing)."""
        with _device_of(args):
            compiled = self.fn[grid](*args, **kwargs)
        if key is not None and hasattr(compiled, "packed_metadata"):  # not an asynchronous compile's future
            self._compiled[key] = compiled

    def _run(
        self,
        compiled: Any,
        grid3: tuple[int, int, int],
        device: int,
        values: Sequence[Any],
        grid: Any,
        args: Sequence[Any],
        kwargs: dict[str, Any],
    ) -> None:
        """Launch ``compiled`` through its own launcher on ``device``; on the first direct launch's failure,
        Triton's path for good."""
        if self._stream is None:
            self._stream = triton.runtime.driver.active.get_current_stream
        try:
            # ``run`` loads the module on first use, which also sets ``function``
            _launch(compiled.run, compiled.function, compiled.packed_metadata, self._stream, device, grid3, values)
        except Exception as error:
            if self._launched_directly:
                raise
            # The first direct launch refused its arguments: a Triton whose launcher takes others. Its own
            # path from now on (which raises again if the launch itself is what fails).
            self.direct = False
            warnings.warn(
                f"{self.fn.__name__}: a direct launch failed ({error!r}); launching through Triton",
                RuntimeWarning,
                stacklevel=3,
            )
            with _device_of(args):
                self.fn[grid](*args, **kwargs)
            return
        self._launched_directly = True

    def planned(
        self,
        plan_key: tuple[Any, ...],
        pointers: tuple[torch.Tensor | None, ...],
        build: Callable[..., tuple[tuple[int, ...], tuple[Any, ...], dict[str, Any]]],
    ) -> None:
        """Launch with ``pointers`` (the kernel's leading tensor or None arguments, the first a tensor) and the
        rest of the arguments that ``build(*plan_key)`` returns as ``(grid, rest, kwargs)``: the grid tuple, the
        positional arguments after the pointers, and the constexprs and ``num_warps``.

        ``plan_key`` must determine everything ``build`` returns (it is called once per plan key and device);
        the pointers' dtypes and 16-byte alignment are added to it here. Under ``torch.compile`` this is
        ``kernel[grid](...)``."""
        if torch.compiler.is_compiling():
            grid, rest, kwargs = build(*plan_key)
            self.fn[grid](*pointers, *rest, **kwargs)
            return
        self.plan(plan_key, pointers, build)(pointers)

    def plan(
        self,
        plan_key: tuple[Any, ...],
        pointers: tuple[torch.Tensor | None, ...],
        build: Callable[..., tuple[tuple[int, ...], tuple[Any, ...], dict[str, Any]]],
    ) -> Planned:
        """The :class:`Planned` launch :meth:`planned` makes for these arguments (not under ``torch.compile``):
        a caller that knows the next calls have the same plan key, pointer dtypes, alignments and device may keep
        it and call it with their pointers."""
        device: int = pointers[0].get_device()  # type: ignore[union-attr]
        key = (plan_key, device, *[None if p is None else (p.dtype, p.data_ptr() & 15) for p in pointers])
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()  # a run meets a handful of shapes: many more means they keep changing
            plan = self._plans[key] = Planned(self, device, len(pointers), *build(*plan_key))
        return plan

    def cached(self) -> int:
        """How many compiled specializations this kernel launches directly."""
        return len(self._compiled)


class Planned:
    """One plan of a :class:`DirectKernel`: its grid, the arguments after the pointers and the constexprs,
    and, once Triton has compiled its specialization and a direct launch of it worked, what launching it takes
    (the compiled launcher, its function and metadata, the stream lookup)."""

    __slots__ = ("kernel", "device", "grid", "grid3", "rest", "kwargs", "tail", "compiled", "launcher")

    def __init__(
        self,
        kernel: DirectKernel,
        device: int,
        n_pointers: int,
        grid: tuple[int, ...],
        rest: tuple[Any, ...],
        kwargs: dict[str, Any],
    ):
        self.kernel, self.device, self.grid, self.rest, self.kwargs = kernel, device, grid, rest, kwargs
        self.grid3 = _grid3(grid)
        # What the compiled launcher takes after the pointers: the rest, then the constexprs in signature order.
        names = kernel._names[n_pointers + len(rest) :]
        self.tail = (*rest, *(kwargs[name] for name in names if name in kwargs))
        self.compiled: Any = None
        self.launcher: tuple[Any, Any, Any, Callable[[int], int]] | None = None

    def __call__(self, pointers: tuple[torch.Tensor | None, ...]) -> None:
        launcher = self.launcher
        if launcher is None or not _enabled or _hooks_installed():
            self._launch_checked(pointers)
            return
        _launch(*launcher, self.device, self.grid3, (*pointers, *self.tail))

    def _launch_checked(self, pointers: tuple[torch.Tensor | None, ...]) -> None:
        """The launch before the plan knows its compiled kernel works directly (or while Triton's path is asked
        for): through Triton until it has compiled, then directly with :meth:`DirectKernel._run`'s fallback."""
        kernel = self.kernel
        args = (*pointers, *self.rest)
        if self.compiled is None or not (kernel.direct and _enabled) or _hooks_installed():
            kernel.launch(self.grid, args, self.kwargs)
            if kernel.direct and _enabled:
                key = kernel.key(args, self.kwargs)
                self.compiled = kernel._compiled.get(key) if key is not None else None
            return
        kernel._run(self.compiled, self.grid3, self.device, (*pointers, *self.tail), self.grid, args, self.kwargs)
        if kernel.direct and kernel._launched_directly and kernel._stream is not None:
            compiled = self.compiled
            self.launcher = (compiled.run, compiled.function, compiled.packed_metadata, kernel._stream)


def direct(fn: Any) -> DirectKernel:
    """Decorator for a ``@triton.jit`` function: launch it as a :class:`DirectKernel`."""
    return DirectKernel(fn)

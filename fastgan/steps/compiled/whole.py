"""How compile mode compiles a step: the objective's gradients (and the optimizer's update) as one graph, and
what a warning says when torch.compile cannot."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from ..._frames import is_library
from ..types import Fn, Tensors
from .zero_branches import ZeroBranches

# One options dict (one pass object) for every step: Dynamo reuses a graph only under an equal backend.
# ``fallback_random``: random ops in the graph (dropout) draw from the default generator as eager ops do, in
# program order, so a compiled step with dropout draws eager's masks.
INDUCTOR_OPTIONS: dict[str, str | int | bool | Callable[..., Any]] = {
    "post_grad_custom_pre_pass": ZeroBranches(),
    "fallback_random": True,
}


def compile_whole(fn: Fn) -> Fn:
    """``fn`` compiled whole for one input shape, without the zero branches of the double backward (see
    :mod:`fastgan.steps.compiled.zero_branches`). Inductor's C++ wrapper is left off: on a CPU it gained little for much
    more compilation per graph (benchmarks/RESULTS.md).

    ``fn`` is called through a function with a code object of its own: Dynamo keeps at most ``recompile_limit``
    (8) graphs per code object, and the steps of one process (each guarded on its own modules and optimizer)
    would otherwise share the one of ``torch.func.grad``'s wrapper."""

    def call(*args: Any) -> Any:
        return fn(*args)

    call.__code__ = call.__code__.replace()
    return torch.compile(call, fullgraph=True, dynamic=False, options=INDUCTOR_OPTIONS)


def with_update(objective: Fn, update: Fn, names: list[str]) -> Fn:
    """``objective``'s gradients for the parameters ``names`` applied by ``update`` (see
    :func:`fastgan.steps.compiled.optimizer_update.in_graph_update`); returns the objective's statistics."""
    gradients = torch.func.grad(objective, has_aux=True)

    def step(params: Tensors, *inputs: Any) -> Any:
        grads, stats = gradients(params, *inputs)
        with torch.no_grad():
            update([params[n] for n in names], [grads[n] for n in names])
        return stats

    return step


def compile_failure(exc: Exception, modules: str) -> str:
    """What stopped torch.compile, for a warning: the modules, the reason's first line, and the innermost frame
    of the user's code Dynamo was tracing (file, line, function and source)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = getattr(exc, "gb_type", None) or (lines or [""])[0][:200]
    if reason.endswith(":") and len(lines) > 1:  # "backend='inductor' raised:" and the error on the next line
        reason = f"{reason} {lines[1][:200]}"
    # An error the traced code raised (Dynamo's "Observed exception") is named by the error inside it.
    inner = re.search(r"got (\w+)\((['\"])(.+?)\2\)", str(exc))
    if inner:
        reason = f"{reason}: {inner.group(1)}: {inner.group(3).split('. ')[0][:300]}"
    where = ""
    frames = [f for f in getattr(exc, "real_stack", None) or () if not is_library(f.filename)]
    if frames:
        f = frames[-1]
        where = f" at {f.filename}:{f.lineno} in {f.name}" + (f" (`{f.line.strip()}`)" if f.line else "")
    return f"torch.compile cannot compile the step of the {modules}: {type(exc).__name__}: {reason}{where}"

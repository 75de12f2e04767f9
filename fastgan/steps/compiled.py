"""How compile mode compiles a step: the objective's gradients (and the optimizer's update) as one graph."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..zero_branches import ZeroBranches

# One options dict (one pass object) for every step: Dynamo reuses a graph only under an equal backend.
# ``fallback_random``: random ops in the graph (dropout) draw from the default generator as eager ops do, in
# program order, so a compiled step with dropout draws eager's masks.
INDUCTOR_OPTIONS = {"post_grad_custom_pre_pass": ZeroBranches(), "fallback_random": True}


def compile_whole(fn: Callable) -> Callable:
    """``fn`` compiled whole for one input shape, without the zero branches of the double backward (see
    :mod:`fastgan.zero_branches`). Inductor's C++ wrapper is left off: on a CPU it gained little for much
    more compilation per graph (benchmarks/RESULTS.md).

    ``fn`` is called through a function with a code object of its own: Dynamo keeps at most ``recompile_limit``
    (8) graphs per code object, and the steps of one process (each guarded on its own modules and optimizer)
    would otherwise share the one of ``torch.func.grad``'s wrapper."""

    def call(*args):
        return fn(*args)

    call.__code__ = call.__code__.replace()
    return torch.compile(call, fullgraph=True, dynamic=False, options=INDUCTOR_OPTIONS)


def with_update(objective: Callable, update: Callable, names: list[str]) -> Callable:
    """``objective``'s gradients for the parameters ``names`` applied by ``update`` (see
    :func:`fastgan.optimizer_update.in_graph_update`); returns the objective's statistics."""
    gradients = torch.func.grad(objective, has_aux=True)

    def step(params, *inputs):
        grads, stats = gradients(params, *inputs)
        with torch.no_grad():
            update([params[n] for n in names], [grads[n] for n in names])
        return stats

    return step


def compile_failure(exc: Exception) -> str:
    return f"torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"

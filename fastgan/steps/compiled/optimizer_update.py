"""Optimizer updates that a compiled step runs inside its gradients' graph.

Dynamo refuses ``optimizer.step()`` in the graph that computes the gradients (setting ``.grad`` there is a
pending mutation on a parameter), so a compiled step would otherwise make two compiled calls, the second with
its own guards on the optimizer's state. Adam, AdamW and RMSprop need no ``.grad``: their ``step`` calls a
functional update (``torch.optim.adam.adam``, ``torch.optim.rmsprop.rmsprop``) on the state tensors their first
``step`` created, and a compiled step calls the same function, with the same state and the hyperparameters read
from ``param_groups`` at every call, inside its graph (one compiled call instead of two: benchmarks/RESULTS.md,
"whole steps with the update in the graph"). Other optimizers keep the two calls.

The per-tensor form of the update is traced whatever ``foreach`` says (Inductor fuses it either way), and
``capturable`` is read outside the graph: inside one Dynamo shows every group as capturable, and the capturable
arithmetic divides by the step size, which turns a learning rate of 0 into NaN where a moment is 0 (the same
happens to ``torch.compile(optimizer.step)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim.adam import adam
from torch.optim.rmsprop import rmsprop

Group = dict[str, Any]  # an optimizer's parameter group, or a parameter's state


def _adam(
    group: Group, capturable: bool, params: list[torch.Tensor], grads: list[torch.Tensor], states: list[Group]
) -> None:
    amsgrad = group["amsgrad"]
    beta1, beta2 = group["betas"]
    adam(
        params,
        grads,
        [s["exp_avg"] for s in states],
        [s["exp_avg_sq"] for s in states],
        [s["max_exp_avg_sq"] for s in states] if amsgrad else [],
        [s["step"] for s in states],
        foreach=False,
        capturable=capturable,
        decoupled_weight_decay=group["decoupled_weight_decay"],
        amsgrad=amsgrad,
        beta1=beta1,
        beta2=beta2,
        lr=group["lr"],
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=group["maximize"],
    )


def _rmsprop(
    group: Group, capturable: bool, params: list[torch.Tensor], grads: list[torch.Tensor], states: list[Group]
) -> None:
    momentum, centered = group["momentum"], group["centered"]
    rmsprop(
        params,
        grads,
        [s["square_avg"] for s in states],
        [s["grad_avg"] for s in states] if centered else [],
        [s["momentum_buffer"] for s in states] if momentum > 0 else [],
        [s["step"] for s in states],
        foreach=False,
        capturable=capturable,
        lr=group["lr"],
        alpha=group["alpha"],
        eps=group["eps"],
        weight_decay=group["weight_decay"],
        momentum=momentum,
        centered=centered,
        maximize=group["maximize"],
    )


# Exact types: a subclass may change what ``step`` does.
_UPDATES = {torch.optim.Adam: _adam, torch.optim.AdamW: _adam, torch.optim.RMSprop: _rmsprop}


def in_graph_update(
    optimizer: torch.optim.Optimizer, params: list[torch.Tensor]
) -> Callable[[list[torch.Tensor], list[torch.Tensor]], None] | None:
    """``update(views, grads)``: ``optimizer``'s step for ``params`` given their gradients, as code that
    ``torch.compile`` traces (``views[i]``: a tensor sharing ``params[i]``'s storage, updated in place).

    None where the optimizer is not Adam, AdamW or RMSprop, is fused, differentiable or scaled by a
    ``GradScaler``, does not hold every parameter, holds a complex one, or has no state for one yet (its first
    ``step`` creates it). The state dicts and groups are looked up at every call, so ``load_state_dict`` and
    learning-rate changes take effect (a float learning rate that changes makes Dynamo recompile, as for
    ``torch.compile(optimizer.step)``; a tensor one does not).
    """
    update = _UPDATES.get(type(optimizer))
    groups = optimizer.param_groups
    if (
        update is None
        or getattr(optimizer, "grad_scale", None) is not None
        or any(
            g.get("fused") or g.get("differentiable") or "decoupled_weight_decay" not in g and update is _adam
            for g in groups
        )
    ):
        return None
    group_of = {id(p): k for k, g in enumerate(groups) for p in g["params"]}
    if any(id(p) not in group_of or p.is_complex() or not optimizer.state.get(p) for p in params):
        return None
    # Per group (in the optimizer's order, as its step goes), the indices of its parameters among ``params``.
    members = [(k, [i for i, p in enumerate(params) if group_of[id(p)] == k]) for k in range(len(groups))]
    # ``capturable`` as the groups say now: inside a graph Dynamo shows every group as capturable.
    plan = [(k, groups[k]["capturable"], indices) for k, indices in members if indices]

    def run(views: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        for k, capturable, indices in plan:
            update(
                optimizer.param_groups[k],
                capturable,
                [views[i] for i in indices],
                [grads[i] for i in indices],
                [optimizer.state[params[i]] for i in indices],
            )

    return run

"""An Inductor graph pass that drops the zero branches of a gradient penalty's double backward.

The second derivative of ReLU, LeakyReLU and the other piecewise-linear activations is zero, but autograd still
builds its branch: the derivative of ``threshold_backward`` (ReLU's backward) with respect to the activation is a
``zeros_like``, and that zero tensor is carried back through the critic's layers to the parameters. Inductor
keeps the whole branch (it does not know that a product with a zero tensor is zero): on the reference's MLP critic one
of the nine large matrix products of a compiled WGAN-GP step, on a DCGAN critic the backward convolutions of the
interpolates' pass. The compiled steps of :mod:`fastgan.steps` run this pass, which removes them.

NaN is kept: a product of zeros with data holding NaN or infinity is NaN. Each value the pass knows to be zero
carries a "poison", a 0-dim tensor that is 0, or NaN where the products it replaced would have met NaN or
infinity (``0 * max|data|``, one reduction instead of a product); what the pass writes in the graph is zeros
plus that poison. A NaN anywhere in such data makes the whole folded result NaN, where the product would have
made only some of its elements NaN.
"""

from __future__ import annotations

import math
import operator
from typing import Any, cast

import torch
from torch._guards import detect_fake_mode
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files
from torch.fx import Graph, Node

aten, prims = torch.ops.aten, torch.ops.prims

# Ops whose result is zero when their first argument is: views, layout changes, negation, casts, and the
# backward of ReLU-like activations (the incoming gradient masked or scaled).
_ZERO_IN_ZERO_OUT = {
    aten.permute.default,
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.expand.default,
    aten.t.default,
    aten.transpose.int,
    aten.unsqueeze.default,
    aten.squeeze.default,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.clone.default,
    aten.alias.default,
    aten.neg.default,
    aten._to_copy.default,
    aten.slice.Tensor,
    prims.convert_element_type.default,
    aten.threshold_backward.default,
    aten.leaky_relu_backward.default,
}
_ZERO_SOURCES = {aten.zeros.default, aten.zeros_like.default, aten.new_zeros.default}
_FILLS = {aten.full.default: 1, aten.full_like.default: 1, aten.new_full.default: 2}  # op: fill value's place
_REDUCTIONS = {aten.sum.default, aten.sum.dim_IntList, aten.mean.default, aten.mean.dim}
_PRODUCTS = {aten.mm.default, aten.bmm.default}


class ZeroBranches(CustomGraphPass):
    """``post_grad_custom_pre_pass`` for ``torch.compile(options=...)``: see the module docstring."""

    def __call__(self, graph: Graph) -> None:
        _Folding(graph).run()

    def uuid(self) -> bytes:
        return get_hash_for_files((__file__,))


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _finite_number(x: object) -> bool:
    return isinstance(x, (int, float)) and _is_number(x) and math.isfinite(x)


class _Folding:
    def __init__(self, graph: Graph):
        self.graph = graph
        # Nodes whose value is zeros plus a poison (None: exactly zero).
        self.zeros: dict[Node, Node | None] = {}
        self.flags: dict[Node, Node] = {}  # data node -> 0 * max|data|
        self.fake_mode = detect_fake_mode([n.meta.get("val") for n in graph.nodes if n.op == "placeholder"])

    def run(self) -> None:
        for node in list(self.graph.nodes):
            if node.op == "call_function" and node.users:
                self._fold(node)
        self.graph.eliminate_dead_code()

    def _zero(self, x: object) -> bool:
        return isinstance(x, Node) and x in self.zeros

    def _zero_value(self, x: object) -> bool:
        return self._zero(x) or (_is_number(x) and x == 0)

    def _poison(self, node: Node, *xs: Node) -> Node | None:
        """The poison of a value ``node`` folds from ``xs``: zero nodes, and data nodes whose products with zeros
        it stands for (new nodes go before ``node``)."""
        poison = None
        for x in xs:
            p = self.zeros[x] if self._zero(x) else self._flag(node, x)
            poison = p if poison is None else (poison if p is None else self._call(node, aten.add.Tensor, poison, p))
        return poison

    def _fold(self, node: Node) -> None:
        """Mark ``node`` as zero, or replace it, where its inputs make its value known."""
        target, args = node.target, cast(tuple[Any, ...], node.args)  # torch.fx's Argument: Nodes and values
        zero = self._zero
        if target in _ZERO_SOURCES or (target in _FILLS and self._zero_value(args[_FILLS[target]])):
            self.zeros[node] = None
        elif (target in _ZERO_IN_ZERO_OUT and zero(args[0])) or (
            target in (aten.mul.Tensor, aten.div.Tensor)
            and zero(args[0])
            and _finite_number(args[1])
            and (target is aten.mul.Tensor or args[1] != 0)
        ):
            self.zeros[node] = self.zeros[args[0]]
        elif target is aten.mul.Tensor and zero(args[1]) and _finite_number(args[0]):
            self.zeros[node] = self.zeros[args[1]]
        elif target is aten.where.self and self._zero_value(args[1]) and self._zero_value(args[2]):
            self._replace(node, self._poison(node, *(a for a in args[1:] if isinstance(a, Node))))
        elif target in (aten.add.Tensor, aten.sub.Tensor) and not node.kwargs:
            self._fold_sum(node)
        elif target in _REDUCTIONS and zero(args[0]):
            self._replace(node, self.zeros[args[0]])
        elif target in _PRODUCTS and (zero(args[0]) or zero(args[1])):
            self._replace(node, self._poison(node, args[0], args[1]))
        elif target is aten.addmm.default and not node.kwargs and (zero(args[1]) or zero(args[2])):
            products = self._zeros_of(node, self._poison(node, args[1], args[2]))
            node.replace_all_uses_with(self._call(node, aten.add.Tensor, products, args[0]))
        elif target is aten.convolution_backward.default and zero(args[0]):
            self._fold_convolution_backward(node)

    def _fold_sum(self, node: Node) -> None:
        """``a + 0``, ``0 + b`` and ``a - 0`` are their other term (plus the zero's poison) where that term has
        the result's shape and dtype."""
        a, b = cast(tuple[Any, ...], node.args)[:2]
        if self._zero(a) and self._zero(b):
            self.zeros[node] = self._poison(node, a, b)
            return
        zero_term = a if self._zero(a) and node.target is aten.add.Tensor else b if self._zero(b) else None
        other = b if zero_term is a else a
        if zero_term is None or not isinstance(other, Node) or not _same_layout(other, node):
            return
        poison = self.zeros[zero_term]
        node.replace_all_uses_with(
            other
            if poison is None
            else self._call(node, aten.add.Tensor, other, self._cast(node, poison, node.meta["val"].dtype))
        )

    def _fold_convolution_backward(self, node: Node) -> None:
        """The gradients of a convolution whose output gradient is zero: the input's (products with the weight),
        the weight's (products with the input) and the bias's (sums of zeros)."""
        grad_output, inputs, weight = cast(tuple[Any, ...], node.args)[:3]
        for user in list(node.users):
            if user.target is operator.getitem and user.users:
                data = {0: [weight], 1: [inputs]}.get(cast(int, user.args[1]), [])
                self._replace(user, self._poison(user, grad_output, *data))

    # ----- building nodes -----

    def _call(self, before: Node, target: Any, *args: Any, **kwargs: Any) -> Node:
        """A new node ``target(*args, **kwargs)`` before ``before``, its fake value computed for Inductor."""
        with self.graph.inserting_before(before):
            node = self.graph.call_function(target, args, kwargs)
        values = [a.meta["val"] if isinstance(a, Node) else a for a in args]
        assert self.fake_mode is not None  # Inductor's post-grad graphs carry fake values
        with self.fake_mode:
            node.meta["val"] = target(*values, **kwargs)
        return node

    def _flag(self, before: Node, data: Node) -> Node:
        """``0 * max|data|``: 0, or NaN where ``data`` holds NaN or infinity (computed once, before the first
        node that needs it)."""
        if data not in self.flags:
            largest = self._call(before, aten.amax.default, self._call(before, aten.abs.default, data), [])
            self.flags[data] = self._call(before, aten.mul.Tensor, largest, 0.0)
        return self.flags[data]

    def _cast(self, before: Node, x: Node, dtype: torch.dtype) -> Node:
        return x if x.meta["val"].dtype == dtype else self._call(before, prims.convert_element_type.default, x, dtype)

    def _zeros_of(self, node: Node, poison: Node | None) -> Node:
        """Zeros of ``node``'s shape, dtype and device, plus ``poison``."""
        value = node.meta["val"]
        zeros = self._call(
            node,
            aten.full.default,
            list(value.shape),
            0.0,
            dtype=value.dtype,
            layout=torch.strided,
            device=value.device,
            pin_memory=False,
        )
        return (
            zeros if poison is None else self._call(node, aten.add.Tensor, zeros, self._cast(node, poison, value.dtype))
        )

    def _replace(self, node: Node, poison: Node | None) -> None:
        """Replace ``node`` by zeros plus ``poison``."""
        zeros = self._zeros_of(node, poison)
        node.replace_all_uses_with(zeros)
        self.zeros[zeros] = poison


def _same_layout(a: Node, b: Node) -> bool:
    va, vb = a.meta.get("val"), b.meta.get("val")
    return (
        isinstance(va, torch.Tensor)
        and isinstance(vb, torch.Tensor)
        and va.shape == vb.shape
        and va.dtype == vb.dtype
        and va.stride() == vb.stride()
    )

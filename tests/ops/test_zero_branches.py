"""The zero-branch pass against the graph it rewrites: the double backward of a gradient penalty, traced by
make_fx from torch.func (autograd's own gradients are the reference), run before and after the pass."""

import pytest
import torch
from torch import nn
from torch.fx.experimental.proxy_tensor import make_fx

from fastgan.steps.compiled.zero_branches import ZeroBranches

aten = torch.ops.aten


def _mlp():
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 1)), (8, 20)


def _conv():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(4, 8, 3, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 1),
    ), (4, 3, 16, 16)


def _smooth():
    return nn.Sequential(nn.Linear(20, 16), nn.Softplus(), nn.Linear(16, 1)), (8, 20)


def _penalty_gradients(critic):
    """The parameter gradients of the gradient penalty at x (the double backward a penalty step compiles)."""

    def penalty(params, x):
        grads = torch.func.grad(lambda x: torch.func.functional_call(critic, params, (x,)).sum())(x)
        return ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean()

    return torch.func.grad(penalty)


def _graphs(build):
    torch.manual_seed(0)
    critic, shape = build()
    params = {n: p.detach() for n, p in critic.named_parameters()}
    x = torch.randn(shape)
    fn = _penalty_gradients(critic)
    before = make_fx(fn, tracing_mode="fake")(params, x)
    after = make_fx(fn, tracing_mode="fake")(params, x)
    ZeroBranches()(after.graph)
    after.recompile()
    return before, after, params, x


def _count(graph_module, target):
    return sum(node.target is target for node in graph_module.graph.nodes)


@pytest.mark.parametrize(
    "build,target,removed",
    [
        (_mlp, aten.mm.default, 1),  # the interpolates' first-layer weight product with a zero gradient
        (_conv, aten.convolution_backward.default, 2),  # both backward convolutions of the interpolates' pass
        (_smooth, aten.mm.default, 0),  # softplus has a second derivative: nothing is zero
    ],
)
def test_the_pass_removes_the_products_of_zeros_and_nothing_else(build, target, removed):
    before, after, params, x = _graphs(build)
    assert _count(before, target) - _count(after, target) == removed
    expected, folded = before(params, x), after(params, x)
    for name in expected:
        assert torch.equal(folded[name], expected[name]), name


@pytest.mark.parametrize("build", [_mlp, _conv])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_in_the_data_still_gives_nan(build, bad):
    """The folded products would have met the bad value: the parameters' gradients that held NaN still do."""
    before, after, params, x = _graphs(build)
    x = x.clone()
    x[1].view(-1)[3] = bad
    expected, folded = before(params, x), after(params, x)
    assert any(g.isnan().any() for g in expected.values())
    for name in expected:
        if expected[name].isnan().any():
            assert folded[name].isnan().any(), name

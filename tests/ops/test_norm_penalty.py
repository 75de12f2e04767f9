import math

import pytest
import torch
from helpers import DTYPES, SHAPE_IDS, SHAPES, assert_elementwise, make, reduction_rtol

import fastgan
from fastgan import reference
from fastgan.kernels.accumulator import accumulator_dtype as accumulator

VARIANTS = [
    pytest.param(1.0, False, id="wgan-gp"),
    pytest.param(1.0, True, id="one-sided"),
    pytest.param(0.0, False, id="zero-centred"),
]


def check_penalty(grads, center, one_sided, grad_scale=3.0):
    """fastgan's penalty, norms and gradient of ``grads`` against the float64 reference, element by element."""
    dtype, batch, d = grads.dtype, grads.shape[0], grads[0].numel()
    grads = grads.detach().requires_grad_()
    penalty, norms = fastgan.gradient_norm_penalty(grads, center, one_sided, return_norms=True)
    g64 = grads.detach().double().requires_grad_()
    expected, expected_norms = reference.gradient_norm_penalty(g64, center, one_sided)
    assert not norms.requires_grad
    # Norms: a sum of d squares in fp32, then a correctly rounded square root.
    rtol_norm = reduction_rtol(d, dtype)
    assert_elementwise(norms, expected_norms, accumulator(dtype), ops=1, extra=rtol_norm * expected_norms.detach())
    # Penalty: each deviation carries its norm's error; then a mean over the batch.
    dev = (expected_norms.detach() - center).abs()
    assert_elementwise(
        penalty,
        expected,
        accumulator(dtype),
        ops=0,
        extra=(2 * dev * expected_norms.detach()).mean() * rtol_norm + reduction_rtol(batch) * expected,
    )

    penalty.backward(torch.tensor(grad_scale, device=grads.device))
    (grad_scale * expected).backward()
    # dg = scale * 2 / B * (1 - c / n) * g: its coefficient carries the norm's error through c / n.
    n = expected_norms.detach().reshape((-1,) + (1,) * (grads.dim() - 1))
    coef_error = grad_scale * 2 / batch * (abs(center) / n.clamp_min(1e-300) * rtol_norm)
    assert_elementwise(grads.grad, g64.grad, dtype, ops=4, extra=coef_error * g64.detach().abs())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,layout", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("center,one_sided", VARIANTS)
def test_penalty_and_gradient_match_float64_reference(
    backend, small_grid, device, shape, layout, dtype, center, one_sided
):
    # Scaled so that norms straddle 1: both branches of the one-sided penalty are exercised.
    d = math.prod(shape[1:])
    check_penalty(make(shape, dtype, device, layout) * (1.2 / d**0.5), center, one_sided)


@pytest.mark.parametrize("center,one_sided", VARIANTS)
@pytest.mark.parametrize(
    "shape,layout", [((3, 7), "contiguous"), ((2, 3, 4, 5), "channels_last"), ((1, 1), "contiguous")]
)
def test_gradcheck_float64(backend, device, shape, layout, center, one_sided):
    grads = (make(shape, torch.float64, device, layout) * 0.6).requires_grad_()
    assert torch.autograd.gradcheck(lambda g: fastgan.gradient_norm_penalty(g, center, one_sided), (grads,))


@pytest.mark.parametrize("center,one_sided", VARIANTS)
def test_zero_gradient_sample_gives_zero_gradient_not_nan(backend, device, center, one_sided):
    grads = make((4, 6), torch.float32, device)
    grads[1] = 0
    grads.requires_grad_()
    penalty, norms = fastgan.gradient_norm_penalty(grads, center, one_sided, return_norms=True)
    penalty.backward()
    assert norms[1] == 0
    assert torch.isfinite(penalty) and torch.isfinite(grads.grad).all()
    assert torch.equal(grads.grad[1], torch.zeros_like(grads.grad[1]))


def test_nan_in_one_sample_gives_nan_penalty(backend, device):
    grads = make((4, 6), torch.float32, device)
    grads[2, 3] = float("nan")
    grads.requires_grad_()
    for one_sided in (False, True):
        penalty, norms = fastgan.gradient_norm_penalty(grads, one_sided=one_sided, return_norms=True)
        assert torch.isnan(penalty)
        assert torch.isnan(norms[2]) and torch.isfinite(norms[[0, 1, 3]]).all()
        grads.grad = None
        penalty.backward()
        assert torch.isnan(grads.grad[2]).all()


def test_hand_computed_values(backend, device):
    # Norms 5 and 0.5: two-sided (16 + 0.25) / 2, one-sided 16 / 2, zero-centred (25 + 0.25) / 2.
    grads = torch.tensor([[3.0, 4.0], [0.3, 0.4]], device=device)
    assert fastgan.gradient_norm_penalty(grads).item() == pytest.approx(8.125)
    assert fastgan.gradient_norm_penalty(grads, one_sided=True).item() == pytest.approx(8.0)
    assert fastgan.gradient_norm_penalty(grads, center=0.0).item() == pytest.approx(12.625)


def test_one_dimensional_gradients_are_one_value_per_sample(backend, device):
    grads = torch.tensor([-2.0, 0.5, 1.0], device=device)
    expected = ((2 - 1) ** 2 + (0.5 - 1) ** 2 + 0) / 3
    assert fastgan.gradient_norm_penalty(grads).item() == pytest.approx(expected)

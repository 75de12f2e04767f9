import math

import pytest
import torch
from helpers import DTYPES, SHAPE_IDS, SHAPES, assert_close_to_ref, make

import fastgan
from fastgan import reference

VARIANTS = [
    pytest.param(1.0, False, id="wgan-gp"),
    pytest.param(1.0, True, id="one-sided"),
    pytest.param(0.0, False, id="zero-centred"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,layout", SHAPES, ids=SHAPE_IDS)
def test_penalty_and_gradient_match_float64_reference(backend, device, shape, layout, dtype):
    # Scale so that norms straddle 1: both branches of the one-sided penalty are exercised.
    d = math.prod(shape[1:])
    grads = (make(shape, dtype, device, layout) * (1.2 / d**0.5)).requires_grad_()
    for center, one_sided in [(1.0, False), (1.0, True), (0.0, False)]:
        grads.grad = None
        penalty, norms = fastgan.gradient_norm_penalty(grads, center, one_sided, return_norms=True)
        g64 = grads.detach().double().requires_grad_()
        expected, expected_norms = reference.gradient_norm_penalty(g64, center, one_sided)
        # Norms and penalty accumulate in fp32 whatever the input dtype.
        assert penalty.dtype == torch.float32 and penalty.dim() == 0
        assert norms.dtype == torch.float32 and norms.shape == (shape[0],) and not norms.requires_grad
        torch.testing.assert_close(penalty.double(), expected, rtol=2e-5, atol=1e-7)
        torch.testing.assert_close(norms.double(), expected_norms, rtol=2e-5, atol=1e-7)

        penalty.backward(torch.tensor(3.0, device=device))
        (3 * expected).backward()
        assert grads.grad.dtype == dtype and grads.grad.shape == grads.shape
        assert_close_to_ref(grads.grad, g64.grad, dtype, scale=g64.grad.abs().max() * d)


@pytest.mark.parametrize("center,one_sided", VARIANTS)
@pytest.mark.parametrize("shape,layout", [((3, 7), "contiguous"), ((2, 3, 4, 5), "channels_last"), ((1, 1), "contiguous")])
def test_gradcheck_float64(backend, device, shape, layout, center, one_sided):
    grads = (make(shape, torch.float64, device, layout) * 0.6).requires_grad_()
    assert torch.autograd.gradcheck(lambda g: fastgan.gradient_norm_penalty(g, center, one_sided), (grads,))


def test_multi_chunk_rows_match_reference(backend, device):
    # Long rows with a tiny batch split into many column chunks finished by a second pass.
    grads = make((2, 300000), torch.float32, device) * 0.003
    expected, _ = reference.gradient_norm_penalty(grads.double())
    torch.testing.assert_close(fastgan.gradient_norm_penalty(grads).double(), expected, rtol=2e-5, atol=1e-7)


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


def test_triton_path_is_deterministic(device):
    grads = make((3, 50000), torch.float32, device).requires_grad_()
    with fastgan.use_backend("triton"):
        results = []
        for _ in range(2):
            grads.grad = None
            penalty = fastgan.gradient_norm_penalty(grads)
            penalty.backward()
            results.append((penalty.detach().clone(), grads.grad.clone()))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_one_dimensional_gradients_are_one_value_per_sample(backend, device):
    grads = torch.tensor([-2.0, 0.5, 1.0], device=device)
    expected = ((2 - 1) ** 2 + (0.5 - 1) ** 2 + 0) / 3
    assert fastgan.gradient_norm_penalty(grads).item() == pytest.approx(expected)

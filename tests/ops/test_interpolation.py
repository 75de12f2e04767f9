import pytest
import torch
from helpers import DTYPES, FP32, SHAPE_IDS, SHAPES, assert_elementwise, make, reduction_rtol

import fastgan
from fastgan import reference


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,layout", SHAPES, ids=SHAPE_IDS)
def test_forward_and_backward_match_float64_reference(backend, small_grid, device, shape, layout, dtype):
    real = make(shape, dtype, device, layout, seed=1).requires_grad_()
    fake = make(shape, dtype, device, layout, seed=2).requires_grad_()
    alpha = torch.rand(shape[0], device=device, requires_grad=True)
    out = fastgan.interpolate(real, fake, alpha)

    real64, fake64, alpha64 = (t.detach().double().requires_grad_() for t in (real, fake, alpha))
    expected = reference.interpolate(real64, fake64, alpha64)
    # fake + alpha * (real - fake) in fp32: a rounding of each operation, relative to the operands.
    spread = real64.detach().abs() + fake64.detach().abs()
    assert_elementwise(out, expected, dtype, ops=0, extra=3 * FP32 * spread)

    # grad_out with the sign of (real - fake): alpha's gradient, a sum over the sample, then has no cancellation
    # and its bound is tight (a 0.1% error fails).
    magnitude = make(shape, dtype, device, seed=3).abs()
    grad_out = (magnitude.double() * torch.sign(real64 - fake64).detach()).to(dtype)
    out.backward(grad_out)
    expected.backward(grad_out.double())
    go = grad_out.double().abs()
    assert_elementwise(real.grad, real64.grad, dtype, ops=1)
    assert_elementwise(fake.grad, fake64.grad, dtype, ops=1, extra=2 * FP32 * go)
    d = real[0].numel()
    assert_elementwise(
        alpha.grad,
        alpha64.grad,
        torch.float32,
        ops=0,
        extra=reduction_rtol(d) * alpha64.grad.abs() + 2 * FP32 * (go * spread).flatten(1).sum(1),
    )


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "batch_sliced"])
def test_output_keeps_memory_format(backend, device, layout):
    real = make((3, 4, 5, 6), torch.float32, device, layout, seed=1)
    fake = make((3, 4, 5, 6), torch.float32, device, layout, seed=2)
    out = fastgan.interpolate(real, fake, torch.rand(3, device=device))
    if layout == "channels_last":
        assert out.is_contiguous(memory_format=torch.channels_last)
    else:
        assert out.is_contiguous()


@pytest.mark.parametrize("real_layout,fake_layout", [("contiguous", "channels_last"), ("channels_last", "hw_swapped")])
def test_mixed_layouts_interpolate_elementwise(backend, device, real_layout, fake_layout):
    """Samples ordered differently in memory (neither contiguous in the second pair) meet element by element."""
    real = make((2, 3, 5, 7), torch.float32, device, real_layout, seed=1)
    fake = make((2, 3, 5, 7), torch.float32, device, fake_layout, seed=2)
    alpha = torch.tensor([0.25, 0.75], device=device)
    expected = reference.interpolate(real.double(), fake.double(), alpha.double())
    spread = real.double().abs() + fake.double().abs()
    assert_elementwise(fastgan.interpolate(real, fake, alpha), expected, torch.float32, ops=0, extra=3 * FP32 * spread)


def test_inputs_with_different_row_strides(backend, small_grid, device):
    # real is every other sample of a larger batch (rows 2D apart), fake and the output are packed (D apart):
    # both are used without copies, each with its own row stride.
    real = make((5, 3, 40, 40), torch.float32, device, "batch_sliced", seed=1).requires_grad_()
    fake = make((5, 3, 40, 40), torch.float32, device, seed=2).requires_grad_()
    alpha = torch.rand(5, device=device, requires_grad=True)
    out = fastgan.interpolate(real, fake, alpha)
    real64, fake64, alpha64 = (t.detach().double().requires_grad_() for t in (real, fake, alpha))
    expected = reference.interpolate(real64, fake64, alpha64)
    spread = real64.detach().abs() + fake64.detach().abs()
    assert_elementwise(out, expected, torch.float32, ops=0, extra=3 * FP32 * spread)
    grad_out = torch.sign(real64 - fake64).detach().float()
    out.backward(grad_out)
    expected.backward(grad_out.double())
    assert_elementwise(real.grad, real64.grad, torch.float32, ops=1)
    assert_elementwise(fake.grad, fake64.grad, torch.float32, ops=1, extra=2 * FP32)
    assert_elementwise(
        alpha.grad,
        alpha64.grad,
        torch.float32,
        ops=0,
        extra=reduction_rtol(real[0].numel()) * alpha64.grad.abs() + 2 * FP32 * spread.flatten(1).sum(1),
    )


@pytest.mark.parametrize("alpha_shape", [(4,), (4, 1), (4, 1, 1, 1)])
def test_alpha_shapes_and_dtypes(backend, device, alpha_shape):
    real = make((4, 3, 2, 2), torch.float32, device, seed=1)
    fake = make((4, 3, 2, 2), torch.float32, device, seed=2)
    alpha = torch.rand(alpha_shape, device=device, dtype=torch.float16, requires_grad=True)
    out = fastgan.interpolate(real, fake, alpha)
    expected = reference.interpolate(real.double(), fake.double(), alpha.detach().double())
    spread = real.double().abs() + fake.double().abs()
    assert_elementwise(out, expected, torch.float32, ops=0, extra=3 * FP32 * spread)
    out.sum().backward()
    assert alpha.grad.shape == alpha.shape and alpha.grad.dtype == torch.float16


def test_default_alpha_is_torch_rand_of_the_batch(backend, device):
    real = make((5, 3), torch.float32, device, seed=1)
    fake = make((5, 3), torch.float32, device, seed=2)
    torch.manual_seed(123)
    out = fastgan.interpolate(real, fake)
    torch.manual_seed(123)
    alpha = torch.rand(5, device=device)
    torch.testing.assert_close(out, fastgan.interpolate(real, fake, alpha))
    assert not torch.equal(alpha, torch.rand(5, device=device))  # the draw advanced the generator


@pytest.mark.parametrize("shape,layout", [((3, 7), "contiguous"), ((2, 3, 4, 5), "channels_last")])
def test_gradcheck_float64(backend, device, shape, layout):
    real = make(shape, torch.float64, device, layout, seed=1).requires_grad_()
    fake = make(shape, torch.float64, device, layout, seed=2).requires_grad_()
    alpha = torch.rand(shape[0], 1, device=device, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fastgan.interpolate, (real, fake, alpha))


def test_only_requested_gradients_are_computed(backend, device):
    real = make((3, 5), torch.float32, device, seed=1)
    fake = make((3, 5), torch.float32, device, seed=2).requires_grad_()
    out = fastgan.interpolate(real, fake, torch.full((3,), 0.25, device=device))
    out.backward(torch.ones_like(out))
    assert real.grad is None
    torch.testing.assert_close(fake.grad, torch.full_like(fake, 0.75))

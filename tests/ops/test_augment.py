"""Differentiable augmentation (``fastgan.augment``) against DiffAugment's ops written in its code's shape
(``fastgan.reference.diff_augment``) in float64: outputs, gradients, gradcheck and gradgradcheck, NaN, layouts,
the parameters' draws, ADA's rule, and the errors."""

import pytest
import torch
from helpers import DTYPES, FP32, assert_elementwise, make, reduction_rtol

import fastgan
from fastgan import reference
from fastgan.augment import Augment, augment_params

POLICIES = ["color,translation,cutout", "color", "translation,cutout", "cutout"]
SHAPES = [
    ((3, 3, 8, 8), "contiguous"),
    ((5, 1, 7, 9), "contiguous"),
    ((4, 3, 10, 6), "channels_last"),
    ((3, 5, 9, 11), "strided"),
    ((4, 2, 9, 11), "batch_sliced"),
    ((2, 3, 6, 10), "hw_swapped"),
]
SHAPE_IDS = [f"{'x'.join(map(str, s))}-{lay}" for s, lay in SHAPES]


def _params(x, seed=0, probability=0.8):
    """Parameters with every flag pattern likely: some samples keep some groups of ops off."""
    return augment_params(x, probability=probability, generator=torch.Generator(x.device).manual_seed(seed))


def _per_sample(values, like):
    return values.view(-1, *([1] * (like.dim() - 1)))


def _bound(x64, dtype):
    """Error allowed beyond rounding: each term of ``k s x + (k - k s) m + (1 - k) mu + beta`` is at most twice a
    sample's largest magnitude (s <= 2, k <= 1.5) plus 1/2, each rounded in fp32, and mu a mean over the sample."""
    magnitude = _per_sample(x64.abs().flatten(1).amax(1), x64)
    n = x64[0].numel()
    return 8 * FP32 * (2 * magnitude + 1) + reduction_rtol(n) * _per_sample(x64.abs().flatten(1).mean(1), x64)


CASES = [pytest.param(shape, layout, POLICIES[0], id=name) for (shape, layout), name in zip(SHAPES, SHAPE_IDS)]
CASES += [pytest.param(*SHAPES[0], policy, id=f"{SHAPE_IDS[0]}-{policy}") for policy in POLICIES[1:]]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,layout,policy", CASES)
def test_forward_and_backward_match_float64_reference(backend, device, shape, layout, dtype, policy):
    x = make(shape, dtype, device, layout, seed=1).requires_grad_()
    params = _params(x)
    out = fastgan.augment(x, policy, params=params)
    x64 = x.detach().double().requires_grad_()
    expected = reference.diff_augment(x64, params, policy)
    assert_elementwise(out, expected, dtype, ops=0, extra=_bound(x64.detach(), dtype))
    if layout == "channels_last":
        assert out.is_contiguous(memory_format=torch.channels_last)

    grad_out = make(shape, dtype, device, seed=2)
    out.backward(grad_out)
    expected.backward(grad_out.double())
    assert_elementwise(x.grad, x64.grad, dtype, ops=0, extra=_bound(grad_out.double(), dtype))


@pytest.mark.parametrize("shape", [(65537, 1, 1, 2), (1, 3, 160, 160)], ids=["65537-samples", "76800-elements"])
def test_large_batches_and_samples_match_float64_reference(backend, device, shape):
    """More than 65535 samples (several a program) and a sample of more than 65536 elements (many programs)."""
    x = make(shape, torch.float32, device, seed=3).requires_grad_()
    params = _params(x, seed=4)
    out = fastgan.augment(x, params=params)
    x64 = x.detach().double().requires_grad_()
    expected = reference.diff_augment(x64, params)
    assert_elementwise(out, expected, torch.float32, ops=0, extra=_bound(x64.detach(), torch.float32))
    grad_out = make(shape, torch.float32, device, seed=5)
    out.backward(grad_out)
    expected.backward(grad_out.double())
    assert_elementwise(x.grad, x64.grad, torch.float32, ops=0, extra=_bound(grad_out.double(), torch.float32))


@pytest.mark.parametrize("policy", ["color,translation,cutout", "translation"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_gradcheck_and_gradgradcheck_in_float64(backend, device, policy, layout):
    x = make((2, 3, 4, 5), torch.float64, device, layout, seed=6).requires_grad_()
    params = _params(x, seed=7, probability=1.0)

    def f(x):
        return fastgan.augment(x, policy, params=params)

    # The interpreter runs each kernel in Python: the Triton backend checks random projections (fast mode).
    fast = backend == "triton"
    assert torch.autograd.gradcheck(f, (x,), fast_mode=fast)
    assert torch.autograd.gradgradcheck(f, (x,), fast_mode=fast)


def test_an_input_gradient_through_the_augmentation_matches_the_reference(backend, device):
    """R1 through the augmentation: d/dtheta ||d D(T(x)) / dx||^2 (the double backward of the op) against the
    reference's autograd through its own ops."""
    torch.manual_seed(0)
    critic = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Softplus(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 1)
    ).to(device, torch.float64)
    x = make((3, 3, 8, 8), torch.float64, device, seed=8)
    params = _params(x, seed=9)

    def penalty(augment):
        x_ = x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(critic(augment(x_)).sum(), x_, create_graph=True)
        value = grad.square().flatten(1).sum(1).mean()
        # The last bias does not reach the input gradient: its gradient is None in both.
        return value, torch.autograd.grad(value, list(critic.parameters()), allow_unused=True)

    got, got_grads = penalty(lambda x: fastgan.augment(x, params=params))
    expected, expected_grads = penalty(lambda x: reference.diff_augment(x, params))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    assert got_grads[-1] is None and expected_grads[-1] is None
    for g, e in zip(got_grads[:-1], expected_grads[:-1]):
        torch.testing.assert_close(g, e, rtol=1e-11, atol=1e-13)


def test_nan_stays_nan_where_the_reference_keeps_it(backend, device):
    """A NaN pixel spreads through the sample's means (colour) and survives the cutout (x * mask), as in the
    reference; a NaN shifted out of the image is gone."""
    x = make((4, 3, 8, 8), torch.float32, device, seed=10)
    x[0, 1, 2, 3] = float("nan")
    x[2, 0, 7, 7] = float("nan")
    params = _params(x, seed=11, probability=1.0)
    for policy in ("color,translation,cutout", "translation,cutout"):
        out = fastgan.augment(x, policy, params=params)
        expected = reference.diff_augment(x.double(), params, policy)
        assert_elementwise(out, expected, torch.float32, ops=0, extra=_bound(x.nan_to_num().double(), torch.float32))


def test_the_largest_uniforms_give_the_largest_shift_and_the_last_cutout(backend, device):
    """The largest uniform below 1 maps to the last integer of each range (a shift of 2 at 16 px, the cutout's
    last position), never past it: ``floor(u * n)`` in fp32 stays below n."""
    x = make((2, 1, 16, 16), torch.float32, device, seed=12)
    params = torch.full((2, 10), 1.0 - 2.0**-24, device=device)
    params[:, 7:] = 1.0
    out = fastgan.augment(x, "translation", params=params)
    assert torch.equal(out[:, :, :-2, :-2], x[:, :, 2:, 2:])
    assert (out[:, :, -2:, :] == 0).all() and (out[:, :, :, -2:] == 0).all()
    assert torch.equal(out, reference.diff_augment(x, params, "translation"))
    cut = fastgan.augment(torch.ones_like(x), "cutout", params=params)
    assert (cut[:, :, 12:, 12:] == 0).all() and int((cut == 0).sum()) == 2 * 16  # rows 12-15 x cols 12-15


def test_probability_zero_is_the_identity_and_one_applies_every_group(backend, device):
    x = make((64, 3, 6, 6), torch.float32, device, seed=13)
    assert torch.equal(fastgan.augment(x, probability=0.0), x)
    params = augment_params(x, probability=torch.tensor(1.0, device=device))
    assert (params[:, 7:] == 1).all()
    half = augment_params(torch.empty(20000, 1, device=device), probability=0.3)
    assert ((half[:, 7:] == 0) | (half[:, 7:] == 1)).all()
    assert abs(half[:, 7:].mean().item() - 0.3) < 0.01  # 60000 draws: 4 standard deviations


def test_draws_cover_diffaugment_ranges(device):
    """Over many samples every shift in [-S, S] and every cutout position occurs, and nothing else (S = 2 for
    16 px)."""
    x = torch.zeros(4000, 1, 16, 16, device=device)
    params = augment_params(x)
    marker = torch.zeros(1, 1, 16, 16, device=device)
    marker[0, 0, 8, 8] = 1.0
    moved = fastgan.augment(marker.expand(4000, 1, 16, 16), "translation", params=params)
    rows, cols = (moved[:, 0] == 1).nonzero()[:, 1:].unbind(1)
    assert sorted(set((8 - rows).tolist())) == [-2, -1, 0, 1, 2]
    assert sorted(set((8 - cols).tolist())) == [-2, -1, 0, 1, 2]
    cut = fastgan.augment(torch.ones_like(x), "cutout", params=params)
    assert set((cut[:, 0] == 0).flatten(1).sum(1).tolist()) <= set(range(1, 65))
    # An 8 x 8 cutout starts at one of 17 rows (and columns), -4 to 12: wholly inside for 9 of them.
    whole = (cut[:, 0] == 0).flatten(1).sum(1).eq(64).float().mean().item()
    assert abs(whole - 81 / 289) < 0.03


def test_generators_make_paired_and_reproducible_batches(device):
    x = make((4, 3, 8, 8), torch.float32, device, seed=14)
    y = make((4, 3, 8, 8), torch.float32, device, seed=15)
    first = fastgan.augment(x, generator=torch.Generator(device).manual_seed(3))
    again = fastgan.augment(x, generator=torch.Generator(device).manual_seed(3))
    other = fastgan.augment(x, generator=torch.Generator(device).manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    params = augment_params(x)
    # Paired: the same shifts and cutouts (the same zeros), and a pixel-wise function of the same ops.
    ones = fastgan.augment(torch.ones_like(x), "translation,cutout", params=params)
    assert torch.equal(fastgan.augment(y, "translation,cutout", params=params) == 0, (ones == 0) | (y == 0))


def test_ada_moves_p_by_the_sign_of_the_mean_sign_against_the_target(device):
    augment = Augment(probability=0.5, target=0.6, interval=2, speed=1000)
    x = torch.zeros(10, 3, 4, 4, device=device)
    augment.params(x)
    signs = [0.9, 0.5, 0.2, 0.4, -1.0, 0.0]
    seen = []
    for s in signs:
        augment.observe(torch.tensor(s, device=device), batch=10)
        seen.append(augment.probability.item())
    # every second update: mean 0.7 > 0.6 -> +0.02, mean 0.3 -> -0.02, mean -0.5 -> -0.02
    assert seen == pytest.approx([0.5, 0.52, 0.52, 0.50, 0.50, 0.48])
    state = augment.state_dict()
    twin = Augment(probability=0.0, target=0.6, interval=2, speed=1000)
    twin.load_state_dict(state)
    assert twin.probability.item() == pytest.approx(0.48)
    floor = Augment(probability=0.01, target=0.6, interval=1, speed=10)
    floor.observe(torch.tensor(-1.0), batch=10)
    assert floor.probability.item() == 0.0
    fixed = Augment(probability=0.5)
    fixed.observe(torch.tensor(1.0), batch=10)
    assert fixed.probability.item() == 0.5


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(x=torch.zeros(2, 3, 4)), ValueError, "x must be a .B, C, H, W."),
        (dict(x=torch.zeros(2, 3, 4, 4, dtype=torch.int64)), TypeError, "x must have a floating"),
        (dict(policy="colour"), ValueError, "policy must name"),
        (dict(policy="cutout,color"), ValueError, "in the order color,translation,cutout"),
        (dict(policy=3), TypeError, "policy must be a str"),
        (dict(params=torch.zeros(2, 9)), ValueError, r"params must have shape \(2, 10\)"),
        (dict(params=torch.zeros(2, 10, dtype=torch.float64)), TypeError, "params must be float32"),
        (dict(params=torch.zeros(2, 10), generator=torch.Generator()), ValueError, "params or generator"),
        (dict(probability=1.5), ValueError, "probability must be in"),
        (dict(probability=torch.zeros(2)), ValueError, "probability must be a float or a 0-dim"),
        (dict(translation_ratio=-0.1), ValueError, "translation_ratio"),
        (dict(cutout_ratio=2.0), ValueError, "cutout_ratio must be in"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    x = kwargs.pop("x", torch.zeros(2, 3, 4, 4))
    with pytest.raises(error, match=match):
        fastgan.augment(x, **kwargs)


def test_bad_adaptive_settings_are_named():
    with pytest.raises(ValueError, match="target must be in"):
        Augment(target=2.0)
    with pytest.raises(ValueError, match="interval must be a positive int"):
        Augment(target=0.6, interval=0)
    with pytest.raises(ValueError, match="speed must be"):
        Augment(target=0.6, speed=0)

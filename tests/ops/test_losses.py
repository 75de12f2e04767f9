import pytest
import torch
from helpers import DTYPES, FP32, assert_elementwise, reduction_rtol

import fastgan
from fastgan import reference

# (fastgan loss, reference loss, number of critic outputs it takes)
LOSSES = {
    "wgan_critic": (fastgan.wgan_critic_loss, reference.wgan_critic_loss, 2),
    "wgan_generator": (fastgan.wgan_generator_loss, reference.wgan_generator_loss, 1),
    "lsgan_discriminator": (fastgan.lsgan_discriminator_loss, reference.lsgan_discriminator_loss, 2),
    "lsgan_discriminator_targets": (
        lambda r, f: fastgan.lsgan_discriminator_loss(r, f, a=-1.0, b=0.5),
        lambda r, f: reference.lsgan_discriminator_loss(r, f, a=-1.0, b=0.5),
        2,
    ),
    "lsgan_generator": (fastgan.lsgan_generator_loss, reference.lsgan_generator_loss, 1),
    "lsgan_generator_seed_form": (
        lambda f: fastgan.lsgan_generator_loss(f, c=0.9, half=False),
        lambda f: reference.lsgan_generator_loss(f, c=0.9, half=False),
        1,
    ),
    "ns_discriminator": (fastgan.ns_discriminator_loss, reference.ns_discriminator_loss, 2),
    "ns_discriminator_label_smoothing": (
        lambda r, f: fastgan.ns_discriminator_loss(r, f, label_smoothing=0.1),
        lambda r, f: reference.ns_discriminator_loss(r, f, label_smoothing=0.1),
        2,
    ),
    "ns_generator": (fastgan.ns_generator_loss, reference.ns_generator_loss, 1),
    "hinge_discriminator": (fastgan.hinge_discriminator_loss, reference.hinge_discriminator_loss, 2),
    "hinge_generator": (fastgan.hinge_generator_loss, reference.hinge_generator_loss, 1),
    "rpgan_discriminator": (fastgan.rpgan_discriminator_loss, reference.rpgan_discriminator_loss, 2),
    "rpgan_generator": (fastgan.rpgan_generator_loss, reference.rpgan_generator_loss, 2),
    "ragan_discriminator": (fastgan.ragan_discriminator_loss, reference.ragan_discriminator_loss, 2),
    "ragan_generator": (fastgan.ragan_generator_loss, reference.ragan_generator_loss, 2),
}
SHAPES = [(1,), (7, 1), (64,), (1041, 1), (70000,)]


def _outputs(shape, count, dtype, device):
    gen = torch.Generator().manual_seed(sum(shape))
    # Critic scores around the hinge and logit regions that matter (|x| up to ~3).
    return [
        (torch.randn(shape, generator=gen, dtype=torch.float64) * 1.5 + 0.3 * i).to(device, dtype) for i in range(count)
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", LOSSES)
def test_loss_and_gradients_match_float64_reference(backend, device, name, shape, dtype):
    fn, ref_fn, count = LOSSES[name]
    inputs = [x.requires_grad_() for x in _outputs(shape, count, dtype, device)]
    loss = fn(*inputs)
    inputs64 = [x.detach().double().requires_grad_() for x in inputs]
    expected = ref_fn(*inputs64)
    # A mean of n terms: each term a few fp32 operations (exp and log approximate on GPUs), then the sum.
    n = shape[0]
    spread = sum(x.detach().abs().mean() + 2 for x in inputs64)  # bounds mean(|f(x)|) for every term kind
    assert_elementwise(loss, expected, torch.float32, ops=0, extra=(8 * FP32 + reduction_rtol(n)) * spread**2)

    grad_scale = 2.0
    loss.backward(torch.tensor(grad_scale, device=device))
    (grad_scale * expected).backward()
    # Each gradient element: scale * weight / n * f'(x) in a few fp32 operations, then one rounding to the
    # dtype; (x - target) may cancel, so the error is relative to |x| + |target| as well.
    for x, x64 in zip(inputs, inputs64):
        cancellation = 8 * FP32 * grad_scale / n * (x64.detach().abs() + 2)
        assert_elementwise(x.grad, x64.grad, dtype, ops=8, extra=cancellation)


@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck_float64(backend, device, name):
    fn, _, count = LOSSES[name]
    inputs = [x.requires_grad_() for x in _outputs((5, 1), count, torch.float64, device)]
    assert torch.autograd.gradcheck(fn, tuple(inputs))


def test_values_by_hand(backend, device):
    real = torch.tensor([2.0, 0.0], device=device)
    fake = torch.tensor([-1.0, 3.0], device=device)
    # WGAN: mean(fake) - mean(real) = 1 - 1
    assert fastgan.wgan_critic_loss(real, fake).item() == pytest.approx(0.0)
    assert fastgan.wgan_generator_loss(fake).item() == pytest.approx(-1.0)
    # LSGAN: 0.5 * mean((2-1)^2, (0-1)^2) + 0.5 * mean((-1)^2, 3^2) = 0.5 + 2.5
    assert fastgan.lsgan_discriminator_loss(real, fake).item() == pytest.approx(3.0)
    # 0.5 * mean((-1-1)^2, (3-1)^2) = 2; the reference's MSELoss form is twice that
    assert fastgan.lsgan_generator_loss(fake).item() == pytest.approx(2.0)
    assert fastgan.lsgan_generator_loss(fake, half=False).item() == pytest.approx(4.0)
    # Hinge: mean(relu(1-2), relu(1-0)) + mean(relu(1-1), relu(1+3)) = 0.5 + 2
    assert fastgan.hinge_discriminator_loss(real, fake).item() == pytest.approx(2.5)
    # BCE from logits 0 is log 2 per term
    zero = torch.zeros(3, device=device)
    assert fastgan.ns_discriminator_loss(zero, zero).item() == pytest.approx(2 * 0.6931471805599453)
    assert fastgan.ns_generator_loss(zero).item() == pytest.approx(0.6931471805599453)


def test_relativistic_values_by_hand(backend, device):
    real = torch.tensor([2.0, 0.0], device=device)
    fake = torch.tensor([-1.0, 3.0], device=device)
    sp = torch.nn.functional.softplus
    # RpGAN pairs by position: softplus(-1 - 2), softplus(3 - 0) for the critic; the mirror for the generator.
    pairs = fake.cpu().double() - real.cpu().double()
    assert fastgan.rpgan_discriminator_loss(real, fake).item() == pytest.approx(float(sp(pairs).mean()))
    assert fastgan.rpgan_generator_loss(real, fake).item() == pytest.approx(float(sp(-pairs).mean()))
    # RaGAN: both means are 1; real shifted to (1, -1), fake to (-2, 2); BCE(x, 1) = softplus(-x).
    critic = (sp(-torch.tensor([1.0, -1.0])).mean() + sp(torch.tensor([-2.0, 2.0])).mean()) / 2
    generator = (sp(torch.tensor([1.0, -1.0])).mean() + sp(-torch.tensor([-2.0, 2.0])).mean()) / 2
    assert fastgan.ragan_discriminator_loss(real, fake).item() == pytest.approx(float(critic))
    assert fastgan.ragan_generator_loss(real, fake).item() == pytest.approx(float(generator))


def test_relativistic_average_batches_may_differ_in_size_and_pairs_may_not(backend, device):
    real, fake = torch.randn(5, device=device, dtype=torch.float64), torch.randn(3, 1, device=device).double()
    expected = reference.ragan_discriminator_loss(real, fake.view(-1))
    torch.testing.assert_close(fastgan.ragan_discriminator_loss(real, fake), expected)
    with pytest.raises(ValueError, match="fake_out.*paired|paired.*5 and 3"):
        fastgan.rpgan_discriminator_loss(real, fake)
    with pytest.raises(ValueError, match="fake_out"):
        fastgan.rpgan_generator_loss(real, torch.randn(5, 2, device=device))


def test_cross_entropy_is_stable_for_extreme_logits(backend, device):
    logits = torch.tensor([-200.0, -30.0, 30.0, 200.0], device=device, requires_grad=True)
    loss = fastgan.ns_generator_loss(logits)  # softplus(-x): 200, 30, ~9.4e-14, ~0
    expected = torch.nn.functional.softplus(-logits.detach().double()).mean()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=0)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    torch.testing.assert_close(logits.grad, torch.tensor([-0.25, -0.25, 0.0, 0.0], device=device), atol=1e-12, rtol=0)


def test_reference_lsgan_numbers_reproduce_exactly(backend, device):
    # The reference's LSGAN: Sigmoid critic outputs and nn.MSELoss, no 0.5 on the generator loss.
    torch.manual_seed(0)
    real_pred, fake_pred = torch.rand(64, 1, device=device), torch.rand(64, 1, device=device)
    criterion = torch.nn.MSELoss()
    valid, fake = torch.ones(64, 1, device=device), torch.zeros(64, 1, device=device)
    seed_d = (criterion(real_pred, valid) + criterion(fake_pred, fake)) / 2
    seed_g = criterion(fake_pred, valid)
    torch.testing.assert_close(fastgan.lsgan_discriminator_loss(real_pred, fake_pred), seed_d)
    torch.testing.assert_close(fastgan.lsgan_generator_loss(fake_pred, half=False), seed_g)


def test_real_and_fake_batches_may_differ_in_size(backend, device):
    real, fake = torch.randn(5, device=device), torch.randn(3, 1, device=device)
    torch.testing.assert_close(fastgan.wgan_critic_loss(real, fake), fake.mean() - real.mean())


def test_nan_in_gives_nan_out(backend, device):
    real = torch.tensor([1.0, float("nan")], device=device)
    fake = torch.tensor([0.5, 0.25], device=device)
    for name, (fn, _, count) in LOSSES.items():
        assert torch.isnan(fn(*[real, fake][:count] if count == 2 else [real])), name


@pytest.mark.parametrize(
    "bad,error",
    [
        (lambda d: torch.randn(4, 2, device=d), ValueError),
        (lambda d: torch.randn(0, device=d), ValueError),
        (lambda d: torch.randn((), device=d), ValueError),
        (lambda d: torch.ones(4, dtype=torch.int32, device=d), TypeError),
        (lambda d: torch.randn(4, device="meta"), ValueError),
    ],
)
def test_bad_critic_outputs(backend, device, bad, error):
    with pytest.raises(error, match="fake_out"):
        fastgan.wgan_critic_loss(torch.randn(4, device=device), bad(device))


def test_bad_targets(backend, device):
    x = torch.randn(4, device=device)
    with pytest.raises(ValueError, match=r"\bb\b"):
        fastgan.lsgan_discriminator_loss(x, x, b=float("inf"))
    with pytest.raises(TypeError, match=r"\bc\b"):
        fastgan.lsgan_generator_loss(x, c=None)

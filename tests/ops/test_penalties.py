"""The penalty catalogue (R1, R2, DRAGAN, zero-centred GP, WGAN-LP, approximate R1/R2, lazy regularization)
against references."""

import copy
import warnings

import pytest
import torch
from models import ConvCritic, ReferenceCritic
from torch import nn

import fastgan
from fastgan import reference

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}
KINDS = [
    pytest.param(kind, dtype, id=f"{kind}-{str(dtype)[6:]}")
    for kind in ("mlp", "conv")
    for dtype in (torch.float32, torch.float64)
]


def _critic(kind, device, dtype=torch.float32):
    torch.manual_seed(0)
    if kind == "mlp":
        critic, shape = ReferenceCritic(img_size=20, hidden=16), (6, 20)
    else:
        critic, shape = ConvCritic(), (4, 3, 16, 16)
    critic = critic.to(device)
    real, fake = torch.randn(shape, device=device), torch.randn(shape, device=device)
    critic(real)  # materialise lazy layers
    return critic.to(dtype), real.to(dtype), fake.to(dtype)


def _compare(critic, got, expected_fn):
    """``got`` is (penalty, norms) from fastgan; check it and the critic's parameter gradients."""
    ref_critic = copy.deepcopy(critic)
    penalty, norms = got
    expected, expected_norms = expected_fn(ref_critic)
    tol = TOL[expected.dtype]
    torch.testing.assert_close(penalty, expected, **tol)
    torch.testing.assert_close(norms, expected_norms.detach(), **tol)
    penalty.backward()
    expected.backward()
    for p, p_ref in zip(critic.parameters(), ref_critic.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, **tol)


@pytest.mark.parametrize("kind,dtype", KINDS)
def test_r1_and_r2(backend, device, kind, dtype):
    critic, real, fake = _critic(kind, device, dtype)
    _compare(
        critic,
        fastgan.r1_penalty(critic, real, return_norms=True),
        lambda ref: reference.squared_gradient_norm(ref, real),
    )
    critic.zero_grad()
    _compare(
        critic,
        fastgan.r2_penalty(critic, fake, return_norms=True),
        lambda ref: reference.squared_gradient_norm(ref, fake),
    )
    assert not real.requires_grad and not fake.requires_grad


@pytest.mark.parametrize("kind,dtype", KINDS)
def test_dragan(backend, device, kind, dtype):
    critic, real, _ = _critic(kind, device, dtype)
    alpha = torch.rand(real.shape[0], device=device, dtype=dtype)
    noise = torch.rand_like(real)
    _compare(
        critic,
        fastgan.dragan_penalty(critic, real, alpha=alpha, noise=noise, return_norms=True),
        lambda ref: reference.dragan_penalty(ref, real, alpha, noise),
    )


def test_dragan_draws_its_own_noise(backend, device):
    critic, real, _ = _critic("mlp", device)
    penalty = fastgan.dragan_penalty(critic, real)
    assert penalty.dim() == 0 and torch.isfinite(penalty)


@pytest.mark.parametrize("kind,dtype", KINDS)
def test_zero_centred_and_one_sided_on_interpolates(backend, device, kind, dtype):
    critic, real, fake = _critic(kind, device, dtype)
    alpha = torch.rand(real.shape[0], device=device, dtype=dtype)
    _compare(
        critic,
        fastgan.zero_centered_gradient_penalty(critic, real, fake, alpha=alpha, return_norms=True),
        lambda ref: reference.gradient_penalty(ref, real, fake, alpha, center=0.0),
    )
    critic.zero_grad()
    _compare(
        critic,
        fastgan.gradient_penalty(critic, real, fake, alpha=alpha, one_sided=True, return_norms=True),
        lambda ref: reference.gradient_penalty(ref, real, fake, alpha, one_sided=True),
    )


def test_batchnorm_critic_warns_once(backend, device):
    critic = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1)).to(device)
    real, fake = torch.randn(4, 5, device=device), torch.randn(4, 5, device=device)
    with pytest.warns(UserWarning, match="BatchNorm"):
        fastgan.gradient_penalty(critic, real, fake)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastgan.r1_penalty(critic, real)  # already warned for this critic


def test_no_warning_without_batchnorm(backend, device):
    critic, real, fake = _critic("conv", device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastgan.gradient_penalty(critic, real, fake)


def test_lazy_regularizer_schedule_and_adam_correction():
    lazy = fastgan.LazyRegularizer(every=16, weight=5.0)
    calls = []

    def penalty():
        calls.append(1)
        return torch.tensor(2.0)

    values = [lazy(step, penalty) for step in range(33)]
    assert [s for s, v in enumerate(values) if torch.is_tensor(v)] == [0, 16, 32]
    assert len(calls) == 3 and values[16].item() == 5.0 * 16 * 2.0
    lr, (b1, b2) = lazy.adam_hyperparameters(0.0025, (0.0, 0.99))
    assert lr == pytest.approx(0.0025 * 16 / 17) and b1 == 0.0 and b2 == pytest.approx(0.99 ** (16 / 17))
    with pytest.raises(ValueError, match="every"):
        fastgan.LazyRegularizer(every=0, weight=1.0)


@pytest.mark.parametrize("kind,dtype", KINDS)
@pytest.mark.parametrize("at", ["real", "fake"])
def test_approximate_r1_and_r2(backend, device, kind, dtype, at):
    critic, real, fake = _critic(kind, device, dtype)
    samples = real if at == "real" else fake
    noise = torch.randn(samples.shape, device=device, dtype=dtype)
    function = fastgan.approximate_r1_penalty if at == "real" else fastgan.approximate_r2_penalty
    ref_critic = copy.deepcopy(critic)
    got = function(critic, samples, sigma=0.25, noise=noise)
    expected = reference.approximate_penalty(ref_critic, samples, noise, 0.25)
    tol = TOL[dtype]
    torch.testing.assert_close(got, expected, **tol)
    got.backward()
    expected.backward()
    for p, p_ref in zip(critic.parameters(), ref_critic.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, **tol)
    assert not samples.requires_grad


def test_approximate_r1_tends_to_r1_as_sigma_shrinks(backend, device):
    """E[(D(x) - D(x + sigma eps))^2] / sigma^2 -> ||grad D(x)||^2 (the mean over eps of (grad . eps)^2): one sample
    repeated under many noise draws, in float64."""
    critic, real, _ = _critic("mlp", device, torch.float64)
    x = real[:1].expand(4000, -1).contiguous()
    torch.manual_seed(0)
    sigma = 1e-4
    approximate = fastgan.approximate_r1_penalty(critic, x, sigma=sigma) / sigma**2
    exact = fastgan.r1_penalty(critic, real[:1])
    # The mean of 4000 draws of (g . eps)^2, a scaled chi-square with one degree of freedom: sd sqrt(2/4000) = 2%.
    assert float(approximate) == pytest.approx(float(exact), rel=0.08)


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda c, x: fastgan.r1_penalty(c, x.long()), "real"),
        (lambda c, x: fastgan.r2_penalty(c, x[:0]), "fake"),
        (lambda c, x: fastgan.dragan_penalty(c, x, noise=x[:1]), "noise"),
        (lambda c, x: fastgan.dragan_penalty(c, x, perturbation=0.0), "perturbation"),
        (lambda c, x: fastgan.r1_penalty(c, x, scaler=object()), "scaler"),
        (lambda c, x: fastgan.r1_penalty("critic", x), "critic"),
        (lambda c, x: fastgan.approximate_r1_penalty(c, x, sigma=0.0), "sigma"),
        (lambda c, x: fastgan.approximate_r1_penalty(c, x, noise=x[:, :3]), "noise"),
        (lambda c, x: fastgan.approximate_r2_penalty(c, x.long()), "fake"),
    ],
)
def test_bad_arguments(backend, device, call, name):
    critic, real, _ = _critic("mlp", device)
    with pytest.raises((TypeError, ValueError), match=rf"\b{name}\b"):
        call(critic, real)

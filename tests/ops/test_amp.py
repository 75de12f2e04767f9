"""Mixed precision: a float16 autocast WGAN-GP step with a GradScaler, and large loss scales."""

import copy

import torch
from models import ConvCritic

import fastgan
from fastgan import reference
from fastgan.amp import MAX_PENALTY_SCALE

LAMBDA = 10.0


def _setup(device):
    torch.manual_seed(0)
    critic = ConvCritic().to(device)
    real, fake = torch.randn(8, 3, 16, 16, device=device), torch.randn(8, 3, 16, 16, device=device)
    critic(real)
    return critic, real, fake, torch.rand(8, device=device)


def _critic_step(critic, real, fake, alpha, scaler, penalty_fn):
    """One critic loss and backward under float16 autocast when ``scaler`` is enabled; unscaled gradients."""
    critic.zero_grad()
    with torch.autocast(real.device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        gp, norms = penalty_fn(critic, real, fake, alpha, scaler)
        loss = critic(fake).float().mean() - critic(real).float().mean() + LAMBDA * gp
    scaler.scale(loss).backward()
    inv = 1.0 / scaler.get_scale() if scaler.is_enabled() else 1.0
    return loss.detach(), norms.detach(), [p.grad * inv for p in critic.parameters()]


def _fastgan_penalty(critic, real, fake, alpha, scaler):
    return fastgan.gradient_penalty(critic, real, fake, alpha=alpha, scaler=scaler, return_norms=True)


def _recipe_penalty(critic, real, fake, alpha, scaler):
    """PyTorch's AMP gradient-penalty recipe in plain PyTorch: scaled output, autograd.grad, unscale."""
    s = scaler.get_scale()
    x = reference.interpolate(real, fake, alpha).requires_grad_(True)
    out = critic(x).float() * s
    grads = torch.autograd.grad(out, x, torch.ones_like(out), create_graph=True)[0] / s
    return reference.gradient_norm_penalty(grads.float())


def _scaler(device, scale, enabled=True):
    return torch.amp.GradScaler(device.type, init_scale=scale, enabled=enabled)


def test_float16_step_matches_the_amp_recipe_and_float32(backend, device):
    critic, real, fake, alpha = _setup(device)
    loss32, norms32, grads32 = _critic_step(
        copy.deepcopy(critic), real, fake, alpha, _scaler(device, 1.0, False), _fastgan_penalty
    )
    loss16, norms16, grads16 = _critic_step(
        copy.deepcopy(critic), real, fake, alpha, _scaler(device, MAX_PENALTY_SCALE), _fastgan_penalty
    )
    loss_ref, norms_ref, grads_ref = _critic_step(
        copy.deepcopy(critic), real, fake, alpha, _scaler(device, MAX_PENALTY_SCALE), _recipe_penalty
    )
    # Loss and norms: float16 tolerance against float32.
    torch.testing.assert_close(loss16, loss32, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(norms16, norms32, rtol=2e-3, atol=2e-3)
    # The fused path adds no error of its own to the AMP recipe...
    for g, g_ref in zip(grads16, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=2e-3, atol=2e-3 * g_ref.abs().max().item())
    # ...and stays within what float16 convolutions allow of float32 (CPU half kernels accumulate coarsely).
    bound = 0.02 if device.type == "cuda" else 0.1
    for g, g32 in zip(grads16, grads32):
        assert torch.isfinite(g).all()
        assert (g - g32).norm() <= bound * g32.norm() + 1e-6


def test_large_loss_scale_gives_no_nan_or_inf(backend, device):
    critic, real, fake, alpha = _setup(device)
    scaler = _scaler(device, 2.0**24)
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.0, 0.9))
    for _ in range(4):
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=torch.float16):
            gp, norms = fastgan.gradient_penalty(critic, real, fake, alpha=alpha, scaler=scaler, return_norms=True)
            loss = critic(fake).float().mean() - critic(real).float().mean() + LAMBDA * gp
        assert torch.isfinite(gp) and torch.isfinite(norms).all() and torch.isfinite(loss)
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skipped while the parameter gradients overflow
        scaler.update()
        assert all(torch.isfinite(p).all() for p in critic.parameters())


def test_uncapped_scale_overflows_the_penalty(device):
    """Why the penalty caps the scale: the scaler's default 2^16 already overflows float16 gradients."""
    critic, real, fake, alpha = _setup(device)
    scaler = _scaler(device, 2.0**16)
    with torch.autocast(device.type, dtype=torch.float16):
        _, norms = _recipe_penalty(critic, real, fake, alpha, scaler)
        gp = fastgan.gradient_penalty(critic, real, fake, alpha=alpha, scaler=scaler)
    assert not torch.isfinite(norms).all()
    assert torch.isfinite(gp)


def test_bfloat16_autocast_penalty_matches_the_reference_under_the_same_autocast(backend, device):
    """Under autocast the critic runs in bf16 but the input gradient comes back in x's fp32: the fused penalty
    must then match the reference's penalty on that same gradient to fp32 rounding, and reach the same parameters."""
    critic, real, fake, alpha = _setup(device)
    ref_critic = copy.deepcopy(critic)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        got, norms = fastgan.gradient_penalty(critic, real, fake, alpha=alpha, return_norms=True)
        expected, expected_norms = reference.gradient_penalty(ref_critic, real, fake, alpha)
    assert got.dtype == torch.float32 and norms.dtype == torch.float32
    torch.testing.assert_close(norms, expected_norms.detach(), rtol=1e-5, atol=0)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)
    got.backward()
    expected.backward()
    for p, p_ref in zip(critic.parameters(), ref_critic.parameters()):
        if p_ref.grad is None:  # the last bias does not move the input gradient
            assert p.grad is None
            continue
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-4, atol=1e-6 * p_ref.grad.abs().max().item())

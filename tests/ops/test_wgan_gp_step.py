"""The whole WGAN-GP critic step: fastgan against the reference-style reference, down to every parameter gradient."""

import copy

import pytest
import torch
from models import ConvCritic, ReferenceCritic, ReferenceGenerator

import fastgan
from fastgan import reference

LAMBDA_GP = 10.0


def _critic_and_batch(kind, device, dtype=torch.float32):
    torch.manual_seed(0)
    if kind == "mlp":
        critic, shape = ReferenceCritic(), (16, 784)
    else:
        critic, shape = ConvCritic(), (6, 3, 16, 16)
    real = torch.randn(shape).to(device, dtype)
    fake = torch.randn(shape).to(device, dtype)
    critic = critic.to(device)
    critic(real[:1].float())  # materialise lazy layers
    return critic.to(dtype), real, fake


def _critic_loss(critic, real, fake, penalty):
    return critic(fake).mean() - critic(real).mean() + LAMBDA_GP * penalty


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(
    "kind,channels_last",
    [("mlp", False), ("conv", False), ("conv", True)],
    ids=["mlp", "conv-nchw", "conv-channels_last"],
)
def test_critic_loss_and_parameter_gradients_match_reference(backend, device, kind, dtype, channels_last):
    critic, real, fake = _critic_and_batch(kind, device, dtype)
    if channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
        fake = fake.contiguous(memory_format=torch.channels_last)
    ref_critic = copy.deepcopy(critic)
    alpha = torch.rand(real.shape[0], 1, device=device, dtype=dtype)

    penalty, norms = fastgan.gradient_penalty(critic, real, fake, alpha=alpha, return_norms=True)
    loss = _critic_loss(critic, real, fake, penalty)
    loss.backward()
    ref_penalty, ref_norms = reference.gradient_penalty(ref_critic, real, fake, alpha)
    ref_loss = _critic_loss(ref_critic, real, fake, ref_penalty)
    ref_loss.backward()

    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(loss.to(dtype), ref_loss, **tol)
    torch.testing.assert_close(norms.to(dtype), ref_norms.detach(), **tol)
    for (name, p), p_ref in zip(critic.named_parameters(), ref_critic.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, **tol, msg=lambda m, n=name: f"{n}: {m}")


def test_fake_that_requires_grad_gets_the_penalty_gradient(backend, device):
    critic, real, fake = _critic_and_batch("mlp", device)
    fake.requires_grad_()
    fake_ref = fake.detach().clone().requires_grad_()
    alpha = torch.rand(real.shape[0], device=device)
    fastgan.gradient_penalty(critic, real, fake, alpha=alpha).backward()
    reference.gradient_penalty(critic, real, fake_ref, alpha)[0].backward()
    torch.testing.assert_close(fake.grad, fake_ref.grad, rtol=1e-4, atol=1e-7)


def test_one_sided_penalty_through_the_critic(backend, device):
    critic, real, fake = _critic_and_batch("conv", device)
    alpha = torch.rand(real.shape[0], device=device)
    got = fastgan.gradient_penalty(critic, real, fake, alpha=alpha, one_sided=True, center=0.05)
    expected, _ = reference.gradient_penalty(critic, real, fake, alpha, center=0.05, one_sided=True)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)


def test_compute_gradient_penalty_uses_the_reference_random_numbers(backend, device):
    critic, real, fake = _critic_and_batch("mlp", device)
    torch.manual_seed(7)
    got = fastgan.compute_gradient_penalty(critic, real, fake, device)
    after = torch.rand(3)
    torch.manual_seed(7)
    expected = reference.compute_gradient_penalty(critic, real, fake, device)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert torch.equal(after, torch.rand(3))  # both drew the same numbers from the same generator


def _seed_wgan_gp_loop(gradient_penalty_fn, device, iterations=3, n_critic=5, batch_size=64):
    """The reference's WGAN-GP loop on random data, with the data iterated properly."""
    torch.manual_seed(0)
    generator, discriminator = ReferenceGenerator().to(device), ReferenceCritic().to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    data = torch.rand(iterations * n_critic * batch_size, 784) * 2 - 1
    batches = iter(data.split(batch_size))
    for _ in range(iterations):
        for _ in range(n_critic):
            real_imgs = next(batches).to(device)
            opt_d.zero_grad()
            fake_imgs = generator(torch.randn(batch_size, 100).to(device))
            gp = gradient_penalty_fn(discriminator, real_imgs.data, fake_imgs.data, device)
            d_loss = discriminator(fake_imgs).mean() - discriminator(real_imgs).mean() + LAMBDA_GP * gp
            d_loss.backward()
            opt_d.step()
        opt_g.zero_grad()
        g_loss = -discriminator(generator(torch.randn(batch_size, 100).to(device))).mean()
        g_loss.backward()
        opt_g.step()
    return [p.detach() for p in (*generator.parameters(), *discriminator.parameters())]


def test_drop_in_replacement_in_the_reference_loop(backend, device):
    expected = _seed_wgan_gp_loop(reference.compute_gradient_penalty, device)
    got = _seed_wgan_gp_loop(fastgan.compute_gradient_penalty, device)
    for p, p_ref in zip(got, expected):
        torch.testing.assert_close(p, p_ref, rtol=1e-4, atol=1e-6)

"""Whole-step benchmark cases: one WGAN-GP critic step (zero grad, losses, penalty, backward, Adam step) on the
seed's MLP critic, PyTorch-GAN's MLP critic and a DCGAN critic for 64x64 images, batch 64.

Providers:
- ``seed``: the seed's code (``fastgan.reference``'s penalty in the seed's loop);
- ``fastgan``: ``fastgan.CriticStep`` eager; ``fastgan compile``, ``fastgan graph`` (CUDA) its other modes;
- ``func compile``: the step as a user would compile it with ``torch.func.grad`` + ``functional_call``;
- ``trace compile``: ``torch.compile(fullgraph=True)`` of loss and backward inside
  ``torch._dynamo.config.patch(trace_autograd_ops=True)``, zero_grad outside, the optimizer step compiled apart.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call

import fastgan
from fastgan import reference

from .cases import Case, conv_critic, mlp_critic

LAMBDA = 10.0


def pytorch_gan_critic() -> nn.Module:
    """PyTorch-GAN's WGAN-GP critic for MNIST: 784-512-256-1 with LeakyReLU(0.2)."""
    return nn.Sequential(nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2),
                         nn.Linear(256, 1))


def _adam(critic: nn.Module, capturable: bool = False) -> torch.optim.Adam:
    return torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.999), capturable=capturable)


def _per_sample(alpha: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return alpha.reshape((-1,) + (1,) * (like.dim() - 1))


def seed_step(critic: nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor) -> None:
    """The seed's critic step."""
    opt.zero_grad()
    alpha = torch.rand(real.shape[0], device=real.device)
    gp = reference.gradient_penalty(critic, real, fake, alpha)[0]
    loss = torch.mean(critic(fake)) - torch.mean(critic(real)) + LAMBDA * gp
    loss.backward()
    opt.step()


def func_compile_step(critic: nn.Module, opt: torch.optim.Optimizer) -> Callable:
    """The step written with torch.func and compiled, as a user would (no fastgan)."""

    def objective(params, real, fake, alpha):
        def scores(x):
            return functional_call(critic, params, (x,))

        w = _per_sample(alpha, real)
        x = w * real + (1 - w) * fake
        grads = torch.func.grad(lambda x: scores(x).sum())(x)
        gp = ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
        return scores(fake).mean() - scores(real).mean() + LAMBDA * gp

    grad_fn = torch.compile(torch.func.grad(objective), fullgraph=True)
    opt_step = torch.compile(opt.step)
    params = dict(critic.named_parameters())

    def step(real, fake):
        alpha = torch.rand(real.shape[0], device=real.device)
        grads = grad_fn({n: p.detach() for n, p in params.items()}, real, fake, alpha)
        for n, p in params.items():
            p.grad = grads[n]
        opt_step()

    return step


def trace_compile_step(critic: nn.Module, opt: torch.optim.Optimizer) -> Callable:
    """``trace_autograd_ops``: Dynamo traces autograd.grad(create_graph=True) and backward (no fastgan)."""

    @torch.compile(fullgraph=True)
    def loss_and_backward(real, fake):
        alpha = _per_sample(torch.rand(real.shape[0], device=real.device), real)
        x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        out = critic(x)
        (grads,) = torch.autograd.grad(out, x, torch.ones_like(out), create_graph=True)
        gp = ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
        loss = critic(fake).mean() - critic(real).mean() + LAMBDA * gp
        loss.backward()

    opt_step = torch.compile(opt.step)

    def step(real, fake):
        opt.zero_grad(set_to_none=True)
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            loss_and_backward(real, fake)
        opt_step()

    return step


def _providers(build: Callable[[], nn.Module], real, fake, compile_: bool) -> dict[str, Callable[[], object]]:
    device = real.device
    base = build().to(device)
    made: dict[str, Callable[[], object]] = {}

    def fresh(capturable=False):
        critic = copy.deepcopy(base)
        return critic, _adam(critic, capturable)

    critic, opt = fresh()
    made["seed"] = lambda c=critic, o=opt: seed_step(c, o, real, fake)
    modes = ["eager"] + (["compile"] if compile_ else []) + (["graph"] if device.type == "cuda" else [])
    for mode in modes:
        critic, opt = fresh(capturable=mode == "graph")
        step = fastgan.CriticStep(critic, opt, loss="wgan", penalty="gp", penalty_weight=LAMBDA, mode=mode)
        made["fastgan" if mode == "eager" else f"fastgan {mode}"] = lambda s=step: s(real, fake)
    if compile_:
        critic, opt = fresh()
        made["func compile"] = lambda s=func_compile_step(critic, opt): s(real, fake)
        critic, opt = fresh()
        made["trace compile"] = lambda s=trace_compile_step(critic, opt): s(real, fake)
    return made


CRITICS = {
    "seed mlp": (mlp_critic, (64, 784)),
    "pytorch-gan mlp": (pytorch_gan_critic, (64, 784)),
    "dcgan 64": (conv_critic, (64, 3, 64, 64)),
}


def step_cases(device: torch.device, compile_: bool, critics=tuple(CRITICS)) -> Iterator[Case]:
    """One critic step per provider and critic (timed host included, as a user runs it)."""
    for name in critics:
        build, shape = CRITICS[name]
        torch.manual_seed(0)
        real, fake = torch.rand(shape, device=device) * 2 - 1, torch.rand(shape, device=device) * 2 - 1
        yield Case(f"critic step ({name})", "x".join(map(str, shape)), torch.float32, None,
                   _providers(build, real, fake, compile_))

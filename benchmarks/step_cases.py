"""Whole-step benchmark cases: one WGAN-GP critic step (zero grad, losses, penalty, backward, Adam step), and one
full iteration (5 critic steps on fresh generated batches, then one generator step), on the reference's MLP pair,
PyTorch-GAN's MLP pair and a DCGAN pair for 64x64 images, batch 64 (on CUDA the DCGAN critic step at batch 16
and 256 too); on CUDA also a 128x128 spectral-norm ResNet critic (SNGAN/BigGAN style) at batch 64, with
WGAN-GP and with R1 applied lazily every 16 steps (timed over 16 calls). Every provider returns the detached
loss, as a loop that logs it must (fastgan's steps also return the Wasserstein estimate and the gradient norms).
Each critic-step case carries the FLOPs and eager traffic of one call (:func:`benchmarks.roofline.count_work` of
the reference's step).

Providers:
- ``reference``: the reference's code (``fastgan.reference``'s penalty in the reference's loop);
- ``fastgan``: ``fastgan.CriticStep`` eager; ``fastgan compile``, ``fastgan graph``, ``fastgan compile+graph``
  (CUDA) its other modes; on CUDA also ``fastgan torch path`` (eager on PyTorch's kernels,
  ``use_backend("torch")``: the Triton launches' host cost);
- ``func compile``: the step as a user would compile it with ``torch.func.grad`` + ``functional_call``;
- ``trace compile``: ``torch.compile(fullgraph=True)`` of loss and backward inside
  ``torch._dynamo.config.patch(trace_autograd_ops=True)``, zero_grad outside, the optimizer step compiled apart.

bf16 cases (dtype ``bfloat16``; on a CPU for the reference's MLP only): ``reference bf16``, the reference's step under
bf16
autocast with channels_last images (what a user gets alone in that precision), on CUDA captured by hand in one
CUDA graph where it captures; ``fastgan bf16``, ``fastgan compile bf16``, ``fastgan graph bf16``, ``fastgan
compile+graph bf16``: the steps with ``precision="bf16"`` (channels_last images too); on CUDA for the DCGAN
critic step at batch 64 also ``fastgan graph bf16 nchw``: graph mode on a contiguous critic, each call making
contiguous copies of the
channels_last batches first (two copies of the batch: what ``fastgan train --memory-format contiguous`` saves
against channels_last is the rest).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call

import fastgan
from fastgan import reference
from fastgan.steps.graph import warm_then_capture
from fastgan.steps.modes import GRAPH_MODES
from fastgan.train.models import DCGANGenerator, ResNetCritic, spectral_normalized

from .cases import Case, conv_critic, mlp_critic, mlp_generator
from .roofline import count_work

LAMBDA = 10.0


def pytorch_gan_critic() -> nn.Module:
    """PyTorch-GAN's WGAN-GP critic for MNIST: 784-512-256-1 with LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1)
    )


def pytorch_gan_generator() -> nn.Module:
    """PyTorch-GAN's WGAN-GP generator for MNIST: 100-128-256-512-1024-784, BatchNorm(eps 0.8), LeakyReLU, Tanh."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate([(100, 128), (128, 256), (256, 512), (512, 1024)]):
        layers += [nn.Linear(a, b)] + ([nn.BatchNorm1d(b, 0.8)] if i else []) + [nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Linear(1024, 784), nn.Tanh())


def reference_adam(critic: nn.Module, capturable: bool = False) -> torch.optim.Adam:
    """The reference code's Adam (lr 1e-4, betas (0.5, 0.999)) over ``critic``'s parameters; ``capturable`` for a
    step captured in a CUDA graph."""
    return torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.999), capturable=capturable)


def _per_sample(alpha: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return alpha.reshape((-1,) + (1,) * (like.dim() - 1))


def reference_critic_step(
    critic: nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor
) -> None:
    """The reference's critic step."""
    opt.zero_grad()
    alpha = torch.rand(real.shape[0], device=real.device)
    gp = reference.gradient_penalty(critic, real, fake, alpha)[0]
    loss = torch.mean(critic(fake)) - torch.mean(critic(real)) + LAMBDA * gp
    loss.backward()
    opt.step()
    return loss.detach()


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

    grad_fn = torch.compile(torch.func.grad_and_value(objective), fullgraph=True)
    opt_step = torch.compile(opt.step)
    params = dict(critic.named_parameters())

    def step(real, fake):
        alpha = torch.rand(real.shape[0], device=real.device)
        grads, loss = grad_fn({n: p.detach() for n, p in params.items()}, real, fake, alpha)
        for n, p in params.items():
            p.grad = grads[n]
        opt_step()
        return loss

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
        return loss.detach()

    opt_step = torch.compile(opt.step)

    def step(real, fake):
        opt.zero_grad(set_to_none=True)
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            loss = loss_and_backward(real, fake)
        opt_step()
        return loss

    return step


def reference_generator_step(generator, critic, opt, z) -> torch.Tensor:
    """The reference's generator step."""
    opt.zero_grad()
    loss = -torch.mean(critic(generator(z)))
    loss.backward()
    opt.step()
    return loss.detach()


def func_compile_generator_step(generator: nn.Module, critic: nn.Module, opt: torch.optim.Optimizer) -> Callable:
    """The generator step with torch.func and torch.compile (the critic's parameters held fixed)."""
    fixed = {**dict(generator.named_buffers())}

    def objective(params, z):
        fake = functional_call(generator, (params, fixed), (z,))
        return -functional_call(critic, {n: p.detach() for n, p in critic.named_parameters()}, (fake,)).mean()

    grad_fn = torch.compile(torch.func.grad_and_value(objective), fullgraph=True)
    opt_step = torch.compile(opt.step)
    params = dict(generator.named_parameters())

    def step(z):
        grads, loss = grad_fn({n: p.detach() for n, p in params.items()}, z)
        for n, p in params.items():
            p.grad = grads[n]
        opt_step()
        return loss

    return step


def trace_compile_generator_step(generator: nn.Module, critic: nn.Module, opt: torch.optim.Optimizer) -> Callable:
    """The generator's loss and backward compiled with ``trace_autograd_ops``, the optimizer step apart."""

    @torch.compile(fullgraph=True)
    def loss_and_backward(z):
        loss = -critic(generator(z)).mean()
        loss.backward()
        return loss.detach()

    opt_step = torch.compile(opt.step)

    def step(z):
        opt.zero_grad(set_to_none=True)
        critic.requires_grad_(False)
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            loss = loss_and_backward(z)
        critic.requires_grad_(True)
        opt_step()
        return loss

    return step


# A critic step's objective as CriticStep takes it: loss, penalty, penalty weight, lazy_every.
WGAN_GP = ("wgan", "gp", LAMBDA, 1)
LAZY_R1 = ("ns", "r1", 5.0, 16)  # gamma = 10, StyleGAN2's lazy interval


def seed_lazy_r1_steps(
    critic: nn.Module,
    opt: torch.optim.Optimizer,
    real: torch.Tensor,
    fake: torch.Tensor,
    calls: int = LAZY_R1[3],
    weight: float = LAZY_R1[2],
) -> torch.Tensor:
    """``calls`` critic steps of the non-saturating loss written plainly, R1 (weight x ``calls``) applied as its
    own update after the first one: one period of lazy regularization."""
    for t in range(calls):
        opt.zero_grad()
        loss = reference.ns_discriminator_loss(critic(real), critic(fake))
        loss.backward()
        opt.step()
        if t == 0:
            opt.zero_grad()
            (weight * calls * reference.squared_gradient_norm(critic, real)[0]).backward()
            opt.step()
    return loss.detach()


def _reference_call(objective: tuple, critic: nn.Module, opt: torch.optim.Optimizer) -> Callable:
    """The reference-style code of one timed call of ``objective``: a WGAN-GP step, or a lazy-R1 period."""
    if objective == LAZY_R1:
        return lambda r, f: seed_lazy_r1_steps(critic, opt, r, f)
    return lambda r, f: reference_critic_step(critic, opt, r, f)


def _fastgan_call(step: Callable, objective: tuple) -> Callable:
    calls = objective[3]
    if calls == 1:
        return step

    def period(real, fake):
        for _ in range(calls):
            stats = step(real, fake)
        return stats

    return period


class HandCaptured:
    """``step(*inputs)`` as a user captures it by hand: at the first call one warm-up step, then the step captured
    in one CUDA graph on static copies of the inputs, replayed (inputs copied in) from then on; where the capture
    fails, ``step`` itself."""

    def __init__(self, step: Callable):
        self.step, self.graph = step, None

    def __call__(self, *inputs: torch.Tensor):
        if self.graph is None:
            self.static = [t.clone() for t in inputs]
            try:
                warmed, self.graph, self.out = warm_then_capture(
                    lambda: self.step(*self.static), lambda: self.step(*self.static)
                )
            except Exception as exc:  # noqa: BLE001 - e.g. a host sync in the user's step
                print(
                    f"reference bf16: the step does not capture ({type(exc).__name__}); timed uncaptured",
                    file=sys.stderr,
                )
                self.graph = False
            return self.step(*inputs)
        if self.graph is False:
            return self.step(*inputs)
        for s, t in zip(self.static, inputs):
            s.copy_(t)
        self.graph.replay()
        return self.out.clone()


def _bf16_reference_call(objective: tuple, critic: nn.Module, opt: torch.optim.Optimizer, device) -> Callable:
    call = _reference_call(objective, critic, opt)

    def autocast_call(real, fake):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return call(real, fake)

    return HandCaptured(autocast_call) if device.type == "cuda" else autocast_call


def _step_pairs(
    name: str,
    device: torch.device,
    compile_: bool,
    objective: tuple = WGAN_GP,
    precision: str = "fp32",
    nchw: bool = False,
) -> dict[str, tuple[Callable, Callable | None, nn.Module | None]]:
    """Per provider: its timed critic call ``(real, fake)``, its generator step ``(z)`` and its generator (None
    for critic-only pairs and in bf16), each provider with its own copies of the same initial models; ``nchw``:
    also ``fastgan graph bf16 nchw`` (bf16 on CUDA)."""
    build_critic, build_generator, _, _ = PAIRS[name]
    base_critic = build_critic().to(device)
    base_generator = build_generator().to(device) if build_generator and precision == "fp32" else None
    cuda, bf16 = device.type == "cuda", precision == "bf16"
    if bf16 and _is_conv(base_critic):
        base_critic = base_critic.to(memory_format=torch.channels_last)
    suffix = " bf16" if bf16 else ""
    made = {}

    def fresh(capturable=False):
        critic, generator = copy.deepcopy(base_critic), copy.deepcopy(base_generator)
        return (
            critic,
            generator,
            reference_adam(critic, capturable),
            reference_adam(generator, capturable) if generator is not None else None,
        )

    d, g, opt_d, opt_g = fresh(capturable=bf16 and cuda)
    if bf16:
        made["reference bf16"] = (_bf16_reference_call(objective, d, opt_d, device), None, None)
    else:
        made["reference"] = (
            _reference_call(objective, d, opt_d),
            g and (lambda z, g=g, d=d, o=opt_g: reference_generator_step(g, d, o, z)),
            g,
        )
    # On CUDA also eager on PyTorch's kernels instead of Triton's: what the Triton launches cost the host. (A
    # compiled step with a capturable Adam was measured on an H200 on 2026-11-27: slower, see RESULTS.md.)
    variants = [("fastgan", "eager")]
    if cuda and not bf16:
        variants.append(("fastgan torch path", "eager"))
    if compile_:
        variants.append(("fastgan compile", "compile"))
    if cuda:
        variants.append(("fastgan graph", "graph"))
    if cuda and compile_:
        variants.append(("fastgan compile+graph", "compile+graph"))
    loss, penalty, weight, lazy = objective
    for provider, mode in variants:
        d, g, opt_d, opt_g = fresh(capturable=mode in GRAPH_MODES)
        critic_step = fastgan.CriticStep(
            d, opt_d, loss=loss, penalty=penalty, penalty_weight=weight, lazy_every=lazy, mode=mode, precision=precision
        )
        generator_step = g and fastgan.GeneratorStep(g, d, opt_g, loss=loss, mode=mode)
        if provider.endswith("torch path"):
            critic_step, generator_step = _on_torch_path(critic_step), g and _on_torch_path(generator_step)
        made[provider + suffix] = (_fastgan_call(critic_step, objective), generator_step, g)
    if nchw and bf16 and cuda:
        d = copy.deepcopy(base_critic).to(memory_format=torch.contiguous_format)
        nchw = fastgan.CriticStep(
            d,
            reference_adam(d, capturable=True),
            loss=loss,
            penalty=penalty,
            penalty_weight=weight,
            lazy_every=lazy,
            mode="graph",
            precision=precision,
        )
        critic_step = _fastgan_call(nchw, objective)
        made["fastgan graph bf16 nchw"] = (
            lambda real, fake, step=critic_step: step(real.contiguous(), fake.contiguous()),
            None,
            None,
        )
    if bf16 or objective != WGAN_GP:
        return made
    if compile_:
        d, g, opt_d, opt_g = fresh()
        made["func compile"] = (func_compile_step(d, opt_d), g and func_compile_generator_step(g, d, opt_g), g)
        d, g, opt_d, opt_g = fresh()
        made["trace compile"] = (trace_compile_step(d, opt_d), g and trace_compile_generator_step(g, d, opt_g), g)
    return made


def _is_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def _on_torch_path(step: Callable) -> Callable:
    def run(*args):
        with fastgan.use_backend("torch"):
            return step(*args)

    return run


def _iteration(
    critic_step: Callable,
    generator_step: Callable,
    generator: nn.Module,
    real: torch.Tensor,
    n_critic: int = 5,
    latent_dim: int = 100,
) -> object:
    """``n_critic`` critic steps, each on a freshly generated batch, then one generator step."""
    for _ in range(n_critic):
        with torch.no_grad():
            fake = generator(torch.randn(real.shape[0], latent_dim, device=real.device))
        critic_step(real, fake)
    return generator_step(torch.randn(real.shape[0], latent_dim, device=real.device))


PAIRS = {  # critic, generator (None: critic steps only), batch shape, CUDA only
    "reference mlp": (mlp_critic, mlp_generator, (64, 784), False),
    "pytorch-gan mlp": (pytorch_gan_critic, pytorch_gan_generator, (64, 784), False),
    "dcgan 64": (conv_critic, lambda: DCGANGenerator(100, 3, 64), (64, 3, 64, 64), False),
    "sn resnet 128": (lambda: spectral_normalized(ResNetCritic(3, 128, 64)), None, (64, 3, 128, 128), True),
}
# On CUDA, more batch sizes of a pair's critic step: how its cost grows with the batch.
BATCHES = {"dcgan 64": (16, 64, 256)}
# On a CPU, the bf16 cases of these pairs only (the others take seconds a call there).
CPU_BF16 = ("reference mlp",)


def _work(name: str, device: torch.device, shape: tuple, objective: tuple) -> tuple[int, int]:
    """(FLOPs, eager traffic in bytes) of one timed call of ``objective`` on pair ``name`` (the reference's code, on a
    copy of the critic)."""
    torch.manual_seed(0)
    critic = PAIRS[name][0]().to(device)
    real, fake = torch.rand(shape, device=device), torch.rand(shape, device=device)
    call = _reference_call(objective, critic, reference_adam(critic))
    return count_work(lambda: call(real, fake))


def _batches(shape: tuple, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    real, fake = torch.rand(shape, device=device) * 2 - 1, torch.rand(shape, device=device) * 2 - 1
    if channels_last:
        real, fake = real.to(memory_format=torch.channels_last), fake.to(memory_format=torch.channels_last)
    return real, fake


def _critic_cases(
    name: str, device: torch.device, compile_: bool, shape: tuple, objective: tuple, op: str, iterations: bool
) -> Iterator[Case]:
    """The fp32 case of ``op`` on pair ``name`` at ``shape``, its iteration (fp32, where the pair has a generator),
    then its bf16 case."""
    cuda, size = device.type == "cuda", "x".join(map(str, shape))
    flops, traffic = _work(name, device, shape, objective)
    real, fake = _batches(shape, device, channels_last=False)
    steps = _step_pairs(name, device, compile_, objective)
    # The batches bound as defaults: pytest collects every case before it calls any.
    yield Case(
        op,
        size,
        torch.float32,
        None,
        {p: (lambda c=c, r=real, f=fake: c(r, f)) for p, (c, _, _) in steps.items()},
        flops=flops,
        traffic=traffic,
    )
    if iterations and PAIRS[name][1] is not None and (cuda or name != "dcgan 64"):
        yield Case(
            f"iteration ({name})",
            size,
            torch.float32,
            None,
            {p: (lambda c=c, g=g, m=m, r=real: _iteration(c, g, m, r)) for p, (c, g, m) in steps.items()},
        )
    if cuda or name in CPU_BF16:
        real, fake = _batches(shape, device, channels_last=len(shape) == 4)
        steps = _step_pairs(
            name,
            device,
            compile_,
            objective,
            precision="bf16",
            nchw=name == "dcgan 64" and shape[0] == 64 and objective == WGAN_GP,
        )
        yield Case(
            op,
            size,
            torch.bfloat16,
            None,
            {p: (lambda c=c, r=real, f=fake: c(r, f)) for p, (c, _, _) in steps.items()},
            flops=flops,
            traffic=traffic,
        )


def step_cases(device: torch.device, compile_: bool, pairs=tuple(PAIRS), iterations: bool = True) -> Iterator[Case]:
    """Per model pair and batch: one critic step (fp32, then bf16), and one full iteration (fp32), per provider
    (timed host included, as a user runs them); the lazy-R1 period on the ResNet. On a CPU the CUDA-only pairs,
    the DCGAN iteration (seconds per call) and most bf16 cases are left out."""
    cuda = device.type == "cuda"
    for name in pairs:
        _, _, shape, cuda_only = PAIRS[name]
        if cuda_only and not cuda:
            continue
        for batch in BATCHES.get(name, (shape[0],)) if cuda else (shape[0],):
            yield from _critic_cases(
                name,
                device,
                compile_,
                (batch, *shape[1:]),
                WGAN_GP,
                f"critic step ({name})",
                iterations and batch == shape[0],
            )
        if name == "sn resnet 128":
            yield from _critic_cases(
                name, device, compile_, shape, LAZY_R1, f"critic steps x16 ({name}, lazy r1)", False
            )

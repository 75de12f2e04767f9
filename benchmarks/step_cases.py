"""Whole-step benchmark cases: one WGAN-GP critic step (zero grad, losses, penalty, backward, Adam step), and one
full iteration (5 critic steps on fresh generated batches, then one generator step), on the seed's MLP pair,
PyTorch-GAN's MLP pair and a DCGAN pair for 64x64 images, batch 64. Every provider returns the detached loss,
as a loop that logs it must (fastgan's steps also return the Wasserstein estimate and the gradient norms).

Providers:
- ``seed``: the seed's code (``fastgan.reference``'s penalty in the seed's loop);
- ``fastgan``: ``fastgan.CriticStep`` eager; ``fastgan compile``, ``fastgan graph`` (CUDA) its other modes; on
  CUDA also ``fastgan torch path`` (eager on PyTorch's kernels, ``use_backend("torch")``: the Triton launches'
  host cost);
- ``prototype compile+graph`` (CUDA): :class:`CapturedCompiledStep`, not a mode yet (not counted as fastgan's);
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
from fastgan.steps.graph import warm_then_capture

from fastgan.train.models import DCGANGenerator

from .cases import Case, conv_critic, mlp_critic, mlp_generator

LAMBDA = 10.0


def pytorch_gan_critic() -> nn.Module:
    """PyTorch-GAN's WGAN-GP critic for MNIST: 784-512-256-1 with LeakyReLU(0.2)."""
    return nn.Sequential(nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2),
                         nn.Linear(256, 1))


def pytorch_gan_generator() -> nn.Module:
    """PyTorch-GAN's WGAN-GP generator for MNIST: 100-128-256-512-1024-784, BatchNorm(eps 0.8), LeakyReLU, Tanh."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate([(100, 128), (128, 256), (256, 512), (512, 1024)]):
        layers += [nn.Linear(a, b)] + ([nn.BatchNorm1d(b, 0.8)] if i else []) + [nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Linear(1024, 784), nn.Tanh())


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


def seed_generator_step(generator, critic, opt, z) -> torch.Tensor:
    """The seed's generator step."""
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


def _step_pairs(name: str, device: torch.device, compile_: bool) -> dict[str, tuple[Callable, Callable, nn.Module]]:
    """Per provider: its critic step ``(real, fake)``, its generator step ``(z)`` and its generator, each
    provider with its own copies of the same initial models."""
    build_critic, build_generator, _ = PAIRS[name]
    base_critic, base_generator = build_critic().to(device), build_generator().to(device)
    made = {}

    def fresh(capturable=False):
        critic, generator = copy.deepcopy(base_critic), copy.deepcopy(base_generator)
        return critic, generator, _adam(critic, capturable), _adam(generator, capturable)

    d, g, opt_d, opt_g = fresh()
    made["seed"] = (lambda r, f, d=d, o=opt_d: seed_step(d, o, r, f),
                    lambda z, g=g, d=d, o=opt_g: seed_generator_step(g, d, o, z), g)
    # On CUDA also eager on PyTorch's kernels instead of Triton's: what the Triton launches cost the host. (A
    # compiled step with a capturable Adam was measured on an H200 on 2026-11-27: slower, see RESULTS.md.)
    cuda = device.type == "cuda"
    variants = [("fastgan", "eager")]
    if cuda:
        variants.append(("fastgan torch path", "eager"))
    if compile_:
        variants.append(("fastgan compile", "compile"))
    if cuda:
        variants.append(("fastgan graph", "graph"))
    for provider, mode in variants:
        d, g, opt_d, opt_g = fresh(capturable=mode == "graph")
        critic_step = fastgan.CriticStep(d, opt_d, loss="wgan", penalty="gp", penalty_weight=LAMBDA, mode=mode)
        generator_step = fastgan.GeneratorStep(g, d, opt_g, loss="wgan", mode=mode)
        if provider.endswith("torch path"):
            critic_step, generator_step = _on_torch_path(critic_step), _on_torch_path(generator_step)
        made[provider] = (critic_step, generator_step, g)
    if compile_ and cuda:
        d, g, opt_d, opt_g = fresh(capturable=True)
        critic_step = fastgan.CriticStep(d, opt_d, loss="wgan", penalty="gp", penalty_weight=LAMBDA, mode="compile")
        generator_step = fastgan.GeneratorStep(g, d, opt_g, loss="wgan", mode="compile")
        made["prototype compile+graph"] = (CapturedCompiledStep(critic_step, critic_step._main),
                                           CapturedCompiledStep(generator_step, generator_step._runner), g)
    if compile_:
        d, g, opt_d, opt_g = fresh()
        made["func compile"] = (func_compile_step(d, opt_d), func_compile_generator_step(g, d, opt_g), g)
        d, g, opt_d, opt_g = fresh()
        made["trace compile"] = (trace_compile_step(d, opt_d), trace_compile_generator_step(g, d, opt_g), g)
    return made


class CapturedCompiledStep:
    """Prototype of a compile + graph mode, measured before it becomes one (the issue asks for it where it wins):
    a fastgan step in ``mode="compile"`` whose compiled call (the optimizer's update in its graph, a capturable
    optimizer) is captured as one CUDA graph at the third call and replayed after. The first call is checked
    against eager, the second builds the compiled update; ``runner`` is the part of ``step`` holding it."""

    def __init__(self, step: Callable, runner):
        self.step, self.runner, self.calls = step, runner, 0
        self.graph: torch.cuda.CUDAGraph | None = None

    def __call__(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.graph is None:
            self.calls += 1
            if self.calls <= 2:
                return self.step(*inputs)
            self._capture(inputs)
        for static, t in zip(self.static, inputs):
            static.copy_(t)
        self.graph.replay()
        return {k: v.clone() for k, v in self.stats.items()}

    def _capture(self, inputs) -> None:
        self._prepare(inputs)
        _, self.graph, self.stats = warm_then_capture(self._run_once, self._run_once)

    def _prepare(self, inputs) -> None:
        """Static copies of ``inputs`` for :meth:`_run_once`, once the compiled update is built."""
        if not self.runner.has_compiled_update():
            raise RuntimeError("no compiled step with the optimizer's update in its graph to capture")
        self.static = [t.detach().clone() for t in inputs]
        # The runner's inputs: the batches, then one labels slot per batch (None: unconditional).
        self._runner_inputs = (*self.static, *[None] * len(self.static))

    def _run_once(self) -> dict[str, torch.Tensor]:
        """One compiled step on the static inputs: what the graph holds."""
        stats = self.runner.compiled_update(self._runner_inputs)
        self.runner.objective.after_update()
        return stats


def _on_torch_path(step: Callable) -> Callable:
    def run(*args):
        with fastgan.use_backend("torch"):
            return step(*args)

    return run


def _iteration(critic_step: Callable, generator_step: Callable, generator: nn.Module, real: torch.Tensor,
               n_critic: int = 5, latent_dim: int = 100) -> object:
    """``n_critic`` critic steps, each on a freshly generated batch, then one generator step."""
    for _ in range(n_critic):
        with torch.no_grad():
            fake = generator(torch.randn(real.shape[0], latent_dim, device=real.device))
        critic_step(real, fake)
    return generator_step(torch.randn(real.shape[0], latent_dim, device=real.device))


PAIRS = {
    "seed mlp": (mlp_critic, mlp_generator, (64, 784)),
    "pytorch-gan mlp": (pytorch_gan_critic, pytorch_gan_generator, (64, 784)),
    "dcgan 64": (conv_critic, lambda: DCGANGenerator(100, 3, 64), (64, 3, 64, 64)),
}


def step_cases(device: torch.device, compile_: bool, pairs=tuple(PAIRS), iterations: bool = True) -> Iterator[Case]:
    """One critic step, then one full iteration, per provider and model pair (timed host included, as a user
    runs them). On a CPU the DCGAN iteration (seconds per call) is left out."""
    for name in pairs:
        shape = PAIRS[name][2]
        torch.manual_seed(0)
        real, fake = torch.rand(shape, device=device) * 2 - 1, torch.rand(shape, device=device) * 2 - 1
        size = "x".join(map(str, shape))
        steps = _step_pairs(name, device, compile_)
        # The batches bound as defaults: pytest collects every case before it calls any.
        yield Case(f"critic step ({name})", size, torch.float32, None,
                   {p: (lambda c=c, r=real, f=fake: c(r, f)) for p, (c, _, _) in steps.items()})
        if iterations and (device.type == "cuda" or name != "dcgan 64"):
            yield Case(f"iteration ({name})", size, torch.float32, None,
                       {p: (lambda c=c, g=g, m=m, r=real: _iteration(c, g, m, r)) for p, (c, g, m) in steps.items()})

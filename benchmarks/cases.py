"""Benchmark cases: each op at each size and dtype, with every provider ready to call.

Providers, timed in the same run:
- ``fastgan``: the library (Triton kernels on CUDA, its PyTorch path on CPU);
- ``reference``: the reference's eager code (``fastgan.reference``);
- ``eager``: the best eager PyTorch (``torch.lerp``, ``torch.linalg.vector_norm``, ``torch._foreach_clamp_*``;
  for the losses the reference is already the eager form);
- ``compile``: ``torch.compile`` of the reference's code, where it compiles (double backward does not).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

import fastgan
from fastgan import reference


@dataclass
class Case:
    op: str
    size: str
    dtype: torch.dtype
    bytes: int | None  # minimum memory traffic of one call; None where GB/s means nothing (whole steps)
    providers: dict[str, Callable[[], object]] = field(default_factory=dict)
    flops: int | None = None  # FLOPs of one call (critic steps: benchmarks.roofline.count_work)
    traffic: int | None = None  # bytes eager PyTorch moves in one call (the roofline's intensity: flops / traffic)

    @property
    def kernel_time(self) -> bool:
        """Whether the case times one op, whose GPU time (captured in a CUDA graph, free of host launch
        overhead) is what GB/s describes; whole steps are timed as a user runs them, host included."""
        return self.bytes is not None


def _compiled(fn: Callable, enabled: bool) -> Callable | None:
    return torch.compile(fn, dynamic=False) if enabled else None


def _with(providers: dict[str, Callable | None]) -> dict[str, Callable[[], object]]:
    return {name: fn for name, fn in providers.items() if fn is not None}


def _label(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _eager_penalty(grads: torch.Tensor) -> torch.Tensor:
    norms = torch.linalg.vector_norm(grads, dim=tuple(range(1, grads.dim())), dtype=torch.float32)
    return (norms - 1).square().mean()


def _eager_gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    x_hat = torch.lerp(fake, real, alpha).requires_grad_(True)
    scores = critic(x_hat)
    (grads,) = torch.autograd.grad(scores, x_hat, torch.ones_like(scores), create_graph=True)
    return _eager_penalty(grads)


def _reference_gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    alpha = torch.rand((real.shape[0], 1), device=real.device)
    return reference.gradient_penalty(critic, real, fake, alpha)[0]


def interpolation_cases(device, shapes, dtypes, compile_) -> Iterator[Case]:
    for shape in shapes:
        for dtype in dtypes:
            real, fake = (torch.randn(shape, device=device, dtype=dtype) for _ in range(2))
            alpha = torch.rand(shape[0], device=device)
            alpha_b = alpha.reshape((shape[0],) + (1,) * (len(shape) - 1))
            alpha_typed = alpha_b.to(dtype)
            reference_compiled = _compiled(reference.interpolate, compile_)
            yield Case(
                "interpolation",
                _label(shape),
                dtype,
                3 * real.numel() * real.element_size(),
                _with(
                    {
                        "fastgan": lambda r=real, f=fake, a=alpha: fastgan.interpolate(r, f, a),
                        "reference": lambda r=real, f=fake, a=alpha_b: reference.interpolate(r, f, a),
                        "eager": lambda r=real, f=fake, a=alpha_typed: torch.lerp(f, r, a),
                        "compile": reference_compiled
                        and (lambda r=real, f=fake, a=alpha_b, c=reference_compiled: c(r, f, a)),
                    }
                ),
            )


def penalty_cases(device, shapes, dtypes, compile_) -> Iterator[Case]:
    """Forward and backward of the gradient-norm penalty on given per-sample gradients."""

    def reference_penalty(g):
        return reference.gradient_norm_penalty(g)[0]

    for shape in shapes:
        for dtype in dtypes:
            grads = (torch.randn(shape, device=device, dtype=dtype) / math.prod(shape[1:]) ** 0.5).requires_grad_()
            compiled = _compiled(reference_penalty, compile_)

            def run(penalty_fn, g=grads):
                return torch.autograd.grad(penalty_fn(g), g)

            yield Case(
                "penalty",
                _label(shape),
                dtype,
                3 * grads.numel() * grads.element_size(),
                _with(
                    {
                        "fastgan": lambda run=run: run(fastgan.gradient_norm_penalty),
                        "reference": lambda run=run: run(reference_penalty),
                        "eager": lambda run=run: run(_eager_penalty),
                        "compile": compiled and (lambda run=run, c=compiled: run(c)),
                    }
                ),
            )


mlp_critic = reference.Critic  # the reference code's pair
mlp_generator = reference.Generator


def conv_critic(channels: int = 3, width: int = 64) -> nn.Module:
    """A DCGAN-style critic for 64x64 images, without BatchNorm (WGAN-GP's advice)."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 4 * width, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(4 * width, 1, 8, 1, 0),
        nn.Flatten(),
    )


def gp_step_cases(device, compile_) -> Iterator[Case]:
    """The whole penalty (interpolate, critic, double backward to the critic's parameters)."""
    for name, critic, shape in [("mlp", mlp_critic(), (64, 784)), ("conv", conv_critic(), (64, 3, 64, 64))]:
        critic = critic.to(device)
        params = list(critic.parameters())
        real, fake = (torch.randn(shape, device=device) for _ in range(2))
        compiled = _compiled(_reference_gradient_penalty, compile_)

        def run(penalty_fn, critic=critic, real=real, fake=fake, params=params):
            # The last bias does not move the input gradient, hence allow_unused.
            return torch.autograd.grad(penalty_fn(critic, real, fake), params, allow_unused=True)

        yield Case(
            f"gp step ({name} critic)",
            _label(shape),
            torch.float32,
            None,
            _with(
                {
                    "fastgan": lambda run=run: run(fastgan.gradient_penalty),
                    "reference": lambda run=run: run(_reference_gradient_penalty),
                    "eager": lambda run=run: run(_eager_gradient_penalty),
                    "compile": compiled and (lambda run=run, c=compiled: run(c)),
                }
            ),
        )


def _critic_iteration(critic, generator, optimizer, real, latent, penalty_fn=None, clip_fn=None):
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        fake = generator(latent)
    loss = critic(fake).mean() - critic(real).mean()
    if penalty_fn is not None:
        loss = loss + 10.0 * penalty_fn(critic, real, fake)
    loss.backward()
    optimizer.step()
    if clip_fn is not None:
        clip_fn(critic)


def _foreach_clip(params: list[torch.Tensor], c: float) -> None:
    with torch.no_grad():
        torch._foreach_clamp_min_(params, -c)
        torch._foreach_clamp_max_(params, c)


def iteration_cases(device) -> Iterator[Case]:
    """One full critic iteration of WGAN-GP (Adam) and of WGAN with clipping (RMSprop), reference sizes."""
    real = torch.rand(64, 784, device=device) * 2 - 1
    latent = torch.randn(64, 100, device=device)
    generator = mlp_generator().to(device)
    for label, penalty in [("wgan-gp", True), ("wgan clip", False)]:
        providers = {}
        for provider in ("fastgan", "reference", "eager"):
            critic = mlp_critic().to(device)
            if penalty:
                optimizer = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.999))
                fn = {
                    "fastgan": fastgan.gradient_penalty,
                    "reference": _reference_gradient_penalty,
                    "eager": _eager_gradient_penalty,
                }[provider]
                kwargs = {"penalty_fn": fn}
            else:
                optimizer = torch.optim.RMSprop(critic.parameters(), lr=5e-5)
                clip = {
                    "fastgan": lambda m: fastgan.clip_weights_(m, 0.01),
                    "reference": lambda m: reference.clip_weights_(m, 0.01),
                    "eager": lambda m: _foreach_clip(list(m.parameters()), 0.01),
                }[provider]
                kwargs = {"clip_fn": clip}
            providers[provider] = lambda c=critic, o=optimizer, kw=kwargs: _critic_iteration(
                c, generator, o, real, latent, **kw
            )
        yield Case(f"critic iteration ({label})", "64x784", torch.float32, None, providers)


def clipping_cases(device, dtypes, compile_, large: bool) -> Iterator[Case]:
    """Weight clipping of the reference's critic, of a 120-tensor critic, and (large) of 100M parameters."""
    models = [
        ("reference critic", lambda: mlp_critic()),
        ("120 tensors", lambda: nn.Sequential(*[nn.Linear(128, 128) for _ in range(60)])),
    ]
    if large:
        models.append(
            ("100 x 1M", lambda: nn.ParameterList([nn.Parameter(torch.randn(1024, 1024)) for _ in range(100)]))
        )
    for label, build in models:
        for dtype in dtypes:
            params = list(build().to(device, dtype).parameters())
            numel = sum(p.numel() for p in params)
            compiled = _compiled(_foreach_clip, compile_)
            yield Case(
                "clipping",
                label,
                dtype,
                2 * numel * params[0].element_size(),
                _with(
                    {
                        "fastgan": lambda p=params: fastgan.clip_weights_(p, 0.01),
                        "reference": lambda p=params: reference.clip_weights_(p, 0.01),
                        "eager": lambda p=params: _foreach_clip(p, 0.01),
                        "compile": compiled and (lambda p=params, c=compiled: c(p, 0.01)),
                    }
                ),
            )


LOSSES = {
    "wgan critic": (fastgan.wgan_critic_loss, reference.wgan_critic_loss, 2),
    "lsgan discriminator": (fastgan.lsgan_discriminator_loss, reference.lsgan_discriminator_loss, 2),
    "ns discriminator": (fastgan.ns_discriminator_loss, reference.ns_discriminator_loss, 2),
    "hinge discriminator": (fastgan.hinge_discriminator_loss, reference.hinge_discriminator_loss, 2),
    "ns generator": (fastgan.ns_generator_loss, reference.ns_generator_loss, 1),
}


def losses_cases(device, batches, compile_) -> Iterator[Case]:
    """Forward and backward of the fused losses against their eager form (the reference) and its compilation."""
    for name, (fused, eager, count) in LOSSES.items():
        for batch in batches:
            outs = [torch.randn(batch, 1, device=device).requires_grad_() for _ in range(count)]
            compiled = _compiled(eager, compile_)

            def run(loss_fn, outs=outs):
                return torch.autograd.grad(loss_fn(*outs), outs)

            yield Case(
                f"losses ({name})",
                str(batch),
                torch.float32,
                2 * count * batch * 4,
                _with(
                    {
                        "fastgan": lambda run=run, f=fused: run(f),
                        "reference": lambda run=run, f=eager: run(f),
                        "compile": compiled and (lambda run=run, c=compiled: run(c)),
                    }
                ),
            )

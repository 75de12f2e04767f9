"""The launch-bound calls whose host cost ``benchmarks.launch_cost`` (on a GPU) and ``benchmarks.launch_overhead``
(on a CPU, with stand-in launchers) time: the same calls on either device, so that the CPU model's rows and the
GPU's compare one to one.

Each entry is ``name -> (fastgan's call, the code it replaces)``:

- :func:`op_pairs`, single ops at launch-bound sizes: ``interpolation`` (``fastgan.interpolate`` on 64 x 2 against
  ``torch.lerp``), ``clipping`` (the reference critic's four tensors, at 2 inputs and 16 hidden units, against
  two ``_foreach_clamp`` calls), ``penalty`` and ``loss`` (forward and backward, against the reference's ops);
- :func:`drop_in_pairs`, the drop-ins in a user's loop on a small MLP: ``gp step`` (the penalty and its double
  backward to the critic's parameters) and one ``critic iteration`` of WGAN-GP and of WGAN with clipping.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

import fastgan
from fastgan import reference

from .cases import _critic_iteration, _reference_gradient_penalty

Pair = tuple[Callable[[], object], Callable[[], object]]


def small_mlp(n_in: int, n_out: int) -> nn.Module:
    """Two hidden layers of 16: a critic or generator whose every op is launch-bound."""
    return nn.Sequential(
        nn.Linear(n_in, 16), nn.LeakyReLU(0.2), nn.Linear(16, 16), nn.LeakyReLU(0.2), nn.Linear(16, n_out)
    )


def op_pairs(device: torch.device) -> dict[str, Pair]:
    torch.manual_seed(0)
    real, fake, alpha = (
        torch.randn(64, 2, device=device),
        torch.randn(64, 2, device=device),
        torch.rand(64, device=device),
    )
    alpha_b = alpha[:, None]
    # The reference critic's four tensors, small: the host's work does not depend on their size, a CPU's clamp does.
    params = [p.detach() for p in reference.Critic(img_size=2, hidden=16).to(device).parameters()]
    grads = torch.randn(64, 2, device=device, requires_grad=True)
    scores_real, scores_fake = (torch.randn(64, 1, device=device, requires_grad=True) for _ in range(2))

    def foreach_clip():
        torch._foreach_clamp_min_(params, -0.01)
        torch._foreach_clamp_max_(params, 0.01)

    def penalty(fn):
        return torch.autograd.grad(fn(grads), grads)

    def loss(fn):
        return torch.autograd.grad(fn(scores_real, scores_fake), (scores_real, scores_fake))

    return {
        "interpolation": (lambda: fastgan.interpolate(real, fake, alpha), lambda: torch.lerp(fake, real, alpha_b)),
        "clipping": (lambda: fastgan.clip_weights_(params, 0.01), foreach_clip),
        "penalty": (
            lambda: penalty(fastgan.gradient_norm_penalty),
            lambda: penalty(lambda g: reference.gradient_norm_penalty(g)[0]),
        ),
        "loss": (lambda: loss(fastgan.wgan_critic_loss), lambda: loss(reference.wgan_critic_loss)),
    }


def drop_in_pairs(device: torch.device) -> dict[str, Pair]:
    torch.manual_seed(0)
    real, fake, latent = (torch.randn(64, n, device=device) for n in (8, 8, 4))
    generator = small_mlp(4, 8).to(device)
    critics = [small_mlp(8, 1).to(device) for _ in range(2)]

    def gp_step(fn, critic):
        return torch.autograd.grad(fn(critic, real, fake), list(critic.parameters()), allow_unused=True)

    pairs: dict[str, Pair] = {
        "gp step": (
            lambda: gp_step(fastgan.gradient_penalty, critics[0]),
            lambda: gp_step(_reference_gradient_penalty, critics[1]),
        )
    }
    for label, penalty in (("critic iteration (wgan-gp)", True), ("critic iteration (wgan clip)", False)):
        runs = []
        for provider in ("fastgan", "reference"):
            critic = small_mlp(8, 1).to(device)
            if penalty:
                optimizer: torch.optim.Optimizer = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.999))
                fn = fastgan.gradient_penalty if provider == "fastgan" else _reference_gradient_penalty
                kwargs: dict = {"penalty_fn": fn}
            else:
                optimizer = torch.optim.RMSprop(critic.parameters(), lr=5e-5)
                clip = fastgan.clip_weights_ if provider == "fastgan" else reference.clip_weights_
                kwargs = {"clip_fn": lambda m, clip=clip: clip(m, 0.01)}
            runs.append(lambda c=critic, o=optimizer, kw=kwargs: _critic_iteration(c, generator, o, real, latent, **kw))
        pairs[label] = (runs[0], runs[1])
    return pairs


def critic_step(device: torch.device) -> fastgan.CriticStep:
    """An eager WGAN-GP critic step on a small MLP (8 inputs)."""
    critic = small_mlp(8, 1).to(device)
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-4)
    return fastgan.CriticStep(critic, optimizer, loss="wgan", penalty="gp", penalty_weight=10.0, mode="eager")

"""``python -m benchmarks.launch_overhead``: fastgan's host path on a CPU, each op and drop-in against the code it
replaces, with Triton's compiled kernels replaced by stand-ins whose launchers do nothing.

On a GPU the small ops of GAN training are host-bound: what a call costs is the Python and the C calls before
its launch. This times that part on a CPU (``benchmarks.stand_in``: every fastgan kernel launches directly, as on a
GPU once compiled, through a launcher that does nothing), beside the ATen code each op replaces on the same CPU
tensors, and counts each call's Python and C function calls (the same on every machine). Rows:

- ops (launch-bound sizes): ``interpolation`` (``fastgan.interpolate`` against ``torch.lerp``), ``clipping`` (a
  small critic's four tensors, against two ``_foreach_clamp`` calls), ``penalty`` and ``loss`` (forward and
  backward, against the reference's ops);
- drop-ins in a user's loop on a small MLP: ``gp step`` (the penalty and its double backward to the critic's
  parameters) and one ``critic iteration`` of WGAN-GP and of WGAN with clipping, against the reference's code;
- ``critic step``: an eager WGAN-GP ``CriticStep`` against the same step on fastgan's PyTorch path.

Each op row also carries ``gpu_us_predicted``: ``HOST_FACTOR`` times its CPU time plus ``LAUNCHER_US`` per
launch, the model calibrated against an H200 (benchmarks/RESULTS.md, "CPU model of the host path"); the GPU's
own figures come from ``benchmarks.launch_cost``.

Sets ``TRITON_INTERPRET=1`` before triton is imported (the launchers then take CPU tensors): run it in its own
process.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

os.environ["TRITON_INTERPRET"] = "1"

import torch
from torch import nn

import fastgan
from fastgan import reference

from .cases import _critic_iteration, _reference_gradient_penalty
from .stand_in import python_calls, stand_in_launchers

# The H200 (2026-12-04) spent 38.4 and 43.0 us of host time around the compiled launcher in fastgan.interpolate and
# clip_weights_ where this model measured 44.3 and 49.4 us on the 2-core CPU of these sessions (the code of then);
# its compiled launcher cost 8.7 us a call with tensors.
HOST_FACTOR = 0.87
LAUNCHER_US = 8.7


def _host_us(fns: tuple[Callable[[], object], ...], calls: int, rounds: int) -> list[float]:
    """For each of ``fns``, the fastest of ``rounds`` rounds of ``calls`` calls in microseconds a call (the least
    disturbed by the rest of the machine); the rounds of the functions alternate, so that both see the same
    machine."""
    for fn in fns:
        for _ in range(min(calls, 50)):
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / calls * 1e6)
    return best


def _mlp(n_in: int, n_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_in, 16), nn.LeakyReLU(0.2), nn.Linear(16, 16), nn.LeakyReLU(0.2), nn.Linear(16, n_out)
    )


def _op_pairs() -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    torch.manual_seed(0)
    real, fake, alpha = torch.randn(64, 2), torch.randn(64, 2), torch.rand(64)
    alpha_b = alpha[:, None]
    params = [p.detach() for p in _mlp(2, 1).parameters()][:4]
    grads = torch.randn(64, 2, requires_grad=True)
    scores_real, scores_fake = torch.randn(64, 1, requires_grad=True), torch.randn(64, 1, requires_grad=True)

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
            lambda: penalty(lambda g: ((g.norm(2, dim=1) - 1) ** 2).mean()),
        ),
        "loss": (
            lambda: loss(fastgan.wgan_critic_loss),
            lambda: loss(reference.wgan_critic_loss),
        ),
    }


def _drop_in_pairs() -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    torch.manual_seed(0)
    real, fake, latent = torch.randn(64, 8), torch.randn(64, 8), torch.randn(64, 4)
    generator = _mlp(4, 8)
    pairs = {}
    critics = {provider: _mlp(8, 1) for provider in ("fastgan", "reference")}

    def gp_step(fn, critic):
        return torch.autograd.grad(fn(critic, real, fake), list(critic.parameters()), allow_unused=True)

    pairs["gp step"] = tuple(
        (lambda fn=fn, c=critics[p]: gp_step(fn, c))
        for p, fn in (("fastgan", fastgan.gradient_penalty), ("reference", _reference_gradient_penalty))
    )
    for label, penalty in (("critic iteration (wgan-gp)", True), ("critic iteration (wgan clip)", False)):
        runs = []
        for provider in ("fastgan", "reference"):
            critic = _mlp(8, 1)
            if penalty:
                optimizer: torch.optim.Optimizer = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.999))
                fn = fastgan.gradient_penalty if provider == "fastgan" else _reference_gradient_penalty
                kwargs: dict = {"penalty_fn": fn}
            else:
                optimizer = torch.optim.RMSprop(critic.parameters(), lr=5e-5)
                clip = fastgan.clip_weights_ if provider == "fastgan" else reference.clip_weights_
                kwargs = {"clip_fn": lambda m, clip=clip: clip(m, 0.01)}
            runs.append(lambda c=critic, o=optimizer, kw=kwargs: _critic_iteration(c, generator, o, real, latent, **kw))
        pairs[label] = tuple(runs)
    return pairs


def _critic_step() -> fastgan.CriticStep:
    critic = _mlp(8, 1)
    return fastgan.CriticStep(
        critic,
        torch.optim.Adam(critic.parameters(), lr=1e-4),
        loss="wgan",
        penalty="gp",
        penalty_weight=10.0,
        mode="eager",
    )


def measure(calls: int = 2000, rounds: int = 5) -> dict:
    """The rows (see the module docstring): microseconds a call for fastgan (stand-in launchers) and for the code
    it replaces, their ratio, fastgan's launches and its Python and C function calls per call."""
    rows = []
    with stand_in_launchers() as compiled, fastgan.use_backend("triton"):
        for kind, pairs, n in (("op", _op_pairs(), calls), ("drop-in", _drop_in_pairs(), max(calls // 10, 1))):
            for name, (ours, theirs) in pairs.items():
                ours()  # plans made, checks remembered
                before = compiled.launches
                py_calls, c_calls = python_calls(ours)
                launches = compiled.launches - before
                fastgan_us, replaced_us = _host_us((ours, theirs), n, rounds)
                row = {
                    "kind": kind,
                    "name": name,
                    "fastgan_us": round(fastgan_us, 2),
                    "replaced_us": round(replaced_us, 2),
                    "ratio": round(replaced_us / fastgan_us, 2),
                    "launches": launches,
                    "python_calls": py_calls,
                    "c_calls": c_calls,
                }
                if kind == "op":
                    row["gpu_us_predicted"] = round(HOST_FACTOR * fastgan_us + LAUNCHER_US * launches, 1)
                rows.append(row)
        torch.manual_seed(0)
        real, fake = torch.randn(64, 8), torch.randn(64, 8)
        step, torch_step = _critic_step(), _critic_step()
        step(real, fake)
        before = compiled.launches
        step(real, fake)
        launches = compiled.launches - before

        def torch_path_step():
            with fastgan.use_backend("torch"):
                torch_step(real, fake)

        step_us, torch_us = _host_us((lambda: step(real, fake), torch_path_step), max(calls // 10, 1), rounds)
    rows.append(
        {
            "kind": "step",
            "name": "critic step (eager, wgan-gp)",
            "fastgan_us": round(step_us, 2),
            "replaced_us": round(torch_us, 2),
            "ratio": round(torch_us / step_us, 2),
            "launches": launches,
        }
    )
    return {"host_factor": HOST_FACTOR, "launcher_us": LAUNCHER_US, "rows": rows}


def table(result: dict) -> str:
    lines = [
        "| kind | row | fastgan us | replaced us | speed-up | launches | Python calls | C calls | GPU us predicted |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['kind']} | {r['name']} | {r['fastgan_us']} | {r['replaced_us']} | {r['ratio']}x | {r['launches']} | "
            f"{r.get('python_calls', '')} | {r.get('c_calls', '')} | {r.get('gpu_us_predicted', '')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls a round for the ops (a tenth for the rest)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    # The stand-ins write nothing, so fastgan's outputs hold whatever memory held: keep denormals in it from
    # slowing the PyTorch ops downstream.
    torch.set_flush_denormal(True)
    result = measure(args.calls, args.rounds)
    print(table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

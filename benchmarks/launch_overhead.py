"""``python -m benchmarks.launch_overhead``: the host time fastgan's Python adds around its kernel launches, on a
CPU.

On a GPU whose host is slow, an eager step through fastgan's fused ops took longer than the reference's step although
it asked less of the device (H100 and H200 runs, benchmarks/RESULTS.md): host time, not kernels. This measures
the part of it a CPU can: an eager WGAN-GP ``CriticStep`` on a tiny critic (the kernels' work is nothing) with
``use_backend("triton")``, every Triton kernel launch replaced by a call that does nothing, against the same
step on PyTorch's path. The difference is the Python of fastgan's autograd Functions, checks, tiling and
launch arguments; Triton's own launch cost comes on top and needs a GPU.

Sets ``TRITON_INTERPRET=1`` (so that fastgan's launchers accept CPU tensors) before triton is imported; run it
in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ["TRITON_INTERPRET"] = "1"

import torch
from torch import nn

import fastgan
from fastgan import kernels
from fastgan.kernels.launch import DirectKernel


def _count_launches() -> dict[str, int]:
    """Replace every Triton kernel of ``fastgan.kernels`` by a launcher that only counts; returns the count."""
    import importlib
    import pkgutil

    count = {"launches": 0}

    class _Counted:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                count["launches"] += 1

            return launch

    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"{kernels.__name__}.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, DirectKernel):
                setattr(module, name, _Counted())
    return count


def _critic_step() -> fastgan.CriticStep:
    critic = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 1))
    return fastgan.CriticStep(
        critic,
        torch.optim.Adam(critic.parameters(), lr=1e-4),
        loss="wgan",
        penalty="gp",
        penalty_weight=10.0,
        mode="eager",
    )


def measure(calls: int = 300, rounds: int = 5) -> dict[str, float]:
    """Best-of-``rounds`` microseconds per eager critic step on each path (``calls`` steps a round, interleaved),
    and the kernel launches per step on the Triton path."""
    count = _count_launches()
    torch.manual_seed(0)
    real, fake = torch.randn(2, 8), torch.randn(2, 8)
    steps = {"torch": _critic_step(), "triton": _critic_step()}
    best = dict.fromkeys(steps, float("inf"))
    launches = 0
    for _ in range(rounds):
        for backend, step in steps.items():
            with fastgan.use_backend(backend):
                step(real, fake)  # warm: the optimizer's state
                before = count["launches"]
                start = time.perf_counter()
                for _ in range(calls):
                    step(real, fake)
                best[backend] = min(best[backend], (time.perf_counter() - start) / calls * 1e6)
                if backend == "triton":
                    launches = (count["launches"] - before) / calls
    return {
        "torch_path_us": round(best["torch"], 1),
        "triton_path_us": round(best["triton"], 1),
        "added_us": round(best["triton"] - best["torch"], 1),
        "launches_per_step": launches,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = measure(args.calls, args.rounds)
    print(
        f"eager WGAN-GP critic step, tiny critic: PyTorch path {result['torch_path_us']} us, Triton path with "
        f"launches that do nothing {result['triton_path_us']} us ({result['launches_per_step']:g} launches): "
        f"fastgan's Python around them {result['added_us']} us a step"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m benchmarks.launch_overhead``: fastgan's host path on a CPU, each op and drop-in against the code it
replaces, with Triton's compiled kernels replaced by stand-ins whose launchers do nothing.

On a GPU the small ops of GAN training are host-bound: what a call costs is the Python and the C calls before
its launch. This times that part on a CPU (``benchmarks.stand_in``: every fastgan kernel launches directly, as on a
GPU once compiled, through a launcher that does nothing), beside the ATen code each op replaces on the same CPU
tensors, and counts each call's Python and C function calls (the same on every machine), for the calls of
``benchmarks.host_ops`` (the ops and the drop-ins in a user's loop, which ``benchmarks.launch_cost`` times on a
GPU) and for an eager WGAN-GP ``CriticStep`` against the same step on fastgan's PyTorch path.

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

import fastgan

from .host_ops import critic_step, drop_in_pairs, op_pairs
from .stand_in import python_calls, stand_in_launchers

# The H200 (2026-12-04) spent 38.4 and 43.0 us of host time around the compiled launcher in fastgan.interpolate and
# clip_weights_, where this model of the code of then measured 22-44 and 20-28 us on the 2-core CPU of these
# sessions (best of 7 rounds, three runs, 2026-12-06): factors of 0.9-1.7 and 1.5-2.2, so 1.5, good to a third
# either way (benchmarks/RESULTS.md). Its compiled launcher cost 8.7 us a call with tensors.
HOST_FACTOR = 1.5
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


def measure(calls: int = 2000, rounds: int = 5) -> dict:
    """The rows (see the module docstring): microseconds a call for fastgan (stand-in launchers) and for the code
    it replaces, their ratio, fastgan's launches and its Python and C function calls per call."""
    rows = []
    with stand_in_launchers() as compiled, fastgan.use_backend("triton"):
        cpu = torch.device("cpu")
        for kind, pairs, n in (("op", op_pairs(cpu), calls), ("drop-in", drop_in_pairs(cpu), max(calls // 10, 1))):
            for name, (ours, theirs) in pairs.items():
                for _ in range(2):  # plans made, checks remembered, then the plans' launchers kept
                    ours()
                before = compiled.launches
                py_calls, c_calls, lines = python_calls(ours)
                launches = (compiled.launches - before) // 2  # python_calls calls it twice
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
                    "python_lines": lines,
                }
                if kind == "op":
                    row["gpu_us_predicted"] = round(HOST_FACTOR * fastgan_us + LAUNCHER_US * launches, 1)
                rows.append(row)
        torch.manual_seed(0)
        real, fake = torch.randn(64, 8), torch.randn(64, 8)
        step, torch_step = critic_step(cpu), critic_step(cpu)
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
        "| kind | row | fastgan us | replaced us | speed-up | launches | Python calls | C calls | Python lines | "
        "GPU us predicted |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['kind']} | {r['name']} | {r['fastgan_us']} | {r['replaced_us']} | {r['ratio']}x | {r['launches']} | "
            f"{r.get('python_calls', '')} | {r.get('c_calls', '')} | {r.get('python_lines', '')} | "
            f"{r.get('gpu_us_predicted', '')} |"
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

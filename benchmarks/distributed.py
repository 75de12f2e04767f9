"""Steps per second of ``fastgan train`` on 1 and 2 processes (torchrun, gloo on a CPU or NCCL on GPUs), and a
WGAN-GP critic step averaged over the ranks by fastgan's flat all-reduce against the same step with a
DistributedDataParallel critic (the reference's loop).

    python -m benchmarks.distributed [--processes 1 2] [--steps 600] [--mode eager] [--json out.json]

Each run is its own torchrun job on the ring preset (global batch 256); steps per second are the median of the
logged rates after the first log (which holds any compilation).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


def train_rate(processes: int, steps: int, mode: str, device: str) -> dict:
    """``fastgan train`` under torchrun with ``processes`` ranks: median steps/s after the first log."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(processes),
            "-m",
            "fastgan.cli",
            "train",
            "--steps",
            str(steps),
            "--log-every",
            str(max(steps // 6, 1)),
            "--mode",
            mode,
            "--device",
            device,
            "--quiet",
            "--out",
            out,
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - start
        rates = [
            json.loads(line)["steps_per_second"] for line in (Path(out) / "metrics.jsonl").read_text().splitlines()
        ]
    return {
        "processes": processes,
        "mode": mode,
        "device": device,
        "steps": steps,
        "wall_s": round(wall, 1),
        "steps_per_second": round(statistics.median(rates[1:]), 1),
    }


def _step_rates(reps: int = 300) -> None:
    """Run under torchrun: one critic step of the reference's MLP (batch 64 per rank) with fastgan's all-reduce and
    with DDP; rank 0 prints the medians as JSON."""
    import fastgan

    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    real, fake = torch.rand(64, 784) * 2 - 1, torch.rand(64, 784) * 2 - 1

    def critic():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 1))

    ours_critic = critic()
    ours = fastgan.CriticStep(
        ours_critic,
        torch.optim.Adam(ours_critic.parameters()),
        loss="wgan",
        penalty="gp",
        mode="eager",
        process_group=dist.group.WORLD,
    )
    ddp = nn.parallel.DistributedDataParallel(critic())
    opt = torch.optim.Adam(ddp.parameters())

    def ddp_step():
        opt.zero_grad()
        gp = fastgan.gradient_penalty(ddp, real, fake)
        (ddp(fake).mean() - ddp(real).mean() + 10.0 * gp).backward()
        opt.step()

    times: dict[str, list[float]] = {"fastgan all-reduce": [], "DDP": []}
    for i in range(reps + 20):
        for name, fn in (("fastgan all-reduce", lambda: ours(real, fake)), ("DDP", ddp_step)):
            dist.barrier()
            start = time.perf_counter()
            fn()
            if i >= 20:
                times[name].append(time.perf_counter() - start)
    if dist.get_rank() == 0:
        print(json.dumps({k: round(1e3 * statistics.median(v), 3) for k, v in times.items()}))
    dist.destroy_process_group()


def step_rates(processes: int) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(processes),
            "-m",
            "benchmarks.distributed",
            "--step-worker",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return {"processes": processes, "critic step ms": json.loads(proc.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--mode", nargs="+", default=["eager"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--step-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step_worker:
        _step_rates()
        return 0
    rows = [train_rate(n, args.steps, mode, args.device) for mode in args.mode for n in args.processes]
    if args.device == "cpu":
        rows += [step_rates(n) for n in args.processes if n > 1]
    for row in rows:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

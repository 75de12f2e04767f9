"""``python -m benchmarks.launch_cost``: the host time of fastgan's launch-bound calls against the code they replace,
on a CUDA GPU, and what each call asks of the CUDA runtime and of Python.

The calls are ``benchmarks.host_ops``'s (the rows ``benchmarks.launch_overhead`` models on a CPU): single ops at
launch-bound sizes (``interpolation`` against ``torch.lerp``, ``clipping`` against two ``_foreach_clamp`` calls,
``penalty`` and ``loss`` forward and backward against the reference's ops) and the drop-ins in a user's loop
(``gp step``, ``critic iteration``). Each runs ``--calls`` times without a sync between calls; the host's time
per call is what it costs to issue (the device finishes each kernel before the next is issued, so nothing waits
on it). The ops are timed twice for fastgan: with its direct launches of the compiled kernels (the default) and
through Triton's own launch path.

``--profile`` adds, per op, the CUDA runtime and driver calls one call makes (``torch.profiler``: launches,
device and stream queries, allocations, copies, syncs) for both sides, and the Python functions fastgan's call
spends its time in (``cProfile``): where the host time goes on this machine.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from collections import Counter
from collections.abc import Callable

import torch

from fastgan.kernels.launch import set_direct_launches

from .host_ops import drop_in_pairs, op_pairs
from .report import launch_table


def host_us(fns: tuple[Callable[[], object], ...], calls: int, rounds: int = 5) -> list[float]:
    """For each of ``fns``, the median over ``rounds`` of the host microseconds per call of ``calls`` calls in a
    row; the functions' rounds alternate, so that both see the same machine."""
    for fn in fns:
        for _ in range(50):
            fn()
    torch.cuda.synchronize()
    per_call: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for times, fn in zip(per_call, fns):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times.append((time.perf_counter() - start) / calls * 1e6)
            torch.cuda.synchronize()
    return [sorted(times)[len(times) // 2] for times in per_call]


def runtime_calls(fn: Callable[[], object], calls: int = 20) -> dict[str, float]:
    """The CUDA runtime and driver API calls one call of ``fn`` makes, by name (per call), from the profiler."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    counts: Counter[str] = Counter()
    for event in prof.events():
        name = event.name
        if name.startswith(("cuda", "cu")) and name != "cudaDeviceSynchronize":
            counts[name] += 1
    return {name: round(n / calls, 2) for name, n in counts.most_common()}


def python_profile(fn: Callable[[], object], calls: int = 2000, top: int = 12) -> list[str]:
    """The ``top`` functions by own time over ``calls`` calls of ``fn`` (cProfile's lines)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    torch.cuda.synchronize()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return [line for line in out.getvalue().splitlines() if "/" in line or "{" in line][:top]


def measure(calls: int, profile: bool = False) -> list[dict]:
    device = torch.device("cuda")
    rows = []
    for kind, pairs, n in (("op", op_pairs(device), calls), ("drop-in", drop_in_pairs(device), max(calls // 10, 1))):
        for name, (ours, aten) in pairs.items():
            row: dict = {"kind": kind, "op": name}
            if kind == "op":
                direct = set_direct_launches(False)
                try:
                    row["triton_path_us"] = round(host_us((ours,), n)[0], 2)
                finally:
                    set_direct_launches(direct)
            fastgan_us, aten_us = host_us((ours, aten), n)
            row.update(fastgan_us=round(fastgan_us, 2), aten_us=round(aten_us, 2), ratio=round(fastgan_us / aten_us, 2))
            if profile and kind == "op":
                row["runtime_calls"] = {"fastgan": runtime_calls(ours), "aten": runtime_calls(aten)}
                row["python"] = python_profile(ours)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.launch_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls a round for the ops (a tenth for the drop-ins)")
    parser.add_argument("--profile", action="store_true", help="also count runtime calls and profile the Python")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("launch_cost needs a CUDA GPU", file=sys.stderr)
        return 2
    rows = measure(args.calls, args.profile)
    print(launch_table({"rows": rows}))
    for row in rows:
        for side, counts in row.get("runtime_calls", {}).items():
            print(f"{row['op']} ({side}): " + ", ".join(f"{k} {v:g}" for k, v in counts.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"card": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

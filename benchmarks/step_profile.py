"""``python -m benchmarks.step_profile``: where an image critic step's time goes, per provider and per lever.

For each pair (on CUDA the DCGAN critic for 64x64 images and the spectral-norm ResNet for 128x128, batch 64; on a
CPU the reference's MLP), the bf16 providers of its step rows (``benchmarks.step_cases``: the seed's step under
autocast captured by hand in a CUDA graph, fastgan's eager and graph steps; ``--compile``: the compiled ones too),
each with cuDNN's autotuner off and on (``torch.backends.cudnn.benchmark``: the shapes are fixed, so it may pick
faster convolutions; the steps are built and captured under the setting they are timed with). Per provider:

- ``ms``: one step, host included (``benchmarks.timing.median_ms``), best of ``--rounds`` interleaved rounds;
- ``device_ms``: the device's work in one step (torch.profiler over ``--steps`` steps: the kernels' own times on
  CUDA, the operators' self times on a CPU), ``busy`` its share of ``ms`` on CUDA (near 1: the device is the
  limit; well below: the host is);
- ``tflops`` and ``fraction_of_bf16``: the step's FLOPs (the reference step's, ``roofline.count_work``) over
  ``ms``, on CUDA against the bf16 matmul rate measured in the same run;
- ``top``: the kernels with the most device time, each with its share; ``categories``: the device time by kind
  (convolution, fastgan's Triton kernels, Inductor's, matmul, normalization, optimizer, reduction, copy,
  elementwise, other).

Prints a table per pair and writes everything as JSON (``--out``), with the card's name.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from .report import card_slug
from .roofline import matmul_tflops
from .step_cases import PAIRS, WGAN_GP, _batches, _step_pairs, _work
from .timing import median_ms

CUDA_PAIRS = ("dcgan 64", "sn resnet 128")
CPU_PAIRS = ("reference mlp",)
# A kernel's (or on a CPU an operator's) kind, by its name: the first pattern that matches.
CATEGORIES = (
    ("convolution", r"conv|fprop|dgrad|wgrad|implicit_gemm|winograd"),
    ("fastgan triton", r"interpolation_|penalty_|losses_|clip_|augment_"),
    ("compiled triton", r"^triton_"),
    ("matmul", r"gemm|gemv|matmul|\bmm\b|addmm|aten::mm|aten::mv|aten::dot|aten::linear|cutlass"),
    ("reduction", r"reduce|sum|mean|vector_norm"),
    ("normalization", r"norm|bn_"),
    ("optimizer", r"adam|foreach|multi_tensor"),
    ("copy", r"copy|memcpy|memset|fill|cast|nchwtonhwc|nhwctonchw|transpose|aten::to\b|contiguous|clone"),
    ("elementwise", r"elementwise|vectorized|unrolled|leaky|relu|mul|add|sub|div|where|pow|sqrt|neg"),
)


def category(name: str) -> str:
    """The kind of a kernel or operator by its name (see ``CATEGORIES``); ``other`` where none matches."""
    lowered = name.lower()
    for kind, pattern in CATEGORIES:
        if re.search(pattern, lowered):
            return kind
    return "other"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_times(fn: Callable[[], object], device: torch.device, steps: int) -> dict[str, float]:
    """Microseconds of device work per call of ``fn`` (warmed up), by kernel name: on CUDA the kernels' (and
    copies') own times, on a CPU the operators' self times."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    _sync(device)
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn()
        _sync(device)
    times: dict[str, float] = defaultdict(float)
    if cuda:
        for event in prof.events():
            if event.device_type == torch.autograd.DeviceType.CUDA:
                times[event.name] += event.time_range.elapsed_us() / steps
    else:
        for event in prof.key_averages():
            if event.key.startswith("aten::") and event.self_cpu_time_total > 0:
                times[event.key] += event.self_cpu_time_total / steps
    return dict(times)


def summary(times: dict[str, float], top: int) -> dict:
    """``device_ms``, the ``top`` kernels by time with their shares, and the shares of each category."""
    total = sum(times.values())
    ranked = sorted(times.items(), key=lambda item: -item[1])
    kinds: dict[str, float] = defaultdict(float)
    for name, us in ranked:
        kinds[category(name)] += us
    return {
        "device_ms": total / 1e3,
        "kernels": len(times),
        "top": [
            {"name": name[:160], "us": round(us, 1), "share": round(us / total, 4), "category": category(name)}
            for name, us in ranked[:top]
        ],
        "categories": {kind: round(us / total, 4) for kind, us in sorted(kinds.items(), key=lambda item: -item[1])},
    }


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def _providers(name: str, device: torch.device, compile_: bool) -> dict[str, Callable[[], object]]:
    _, _, shape, _ = PAIRS[name]
    real, fake = _batches(shape, device, channels_last=len(shape) == 4)
    steps = _step_pairs(name, device, compile_, WGAN_GP, precision="bf16")
    return {provider: (lambda c=c: c(real, fake)) for provider, (c, _, _) in steps.items()}


def measure(
    device: torch.device, pairs: tuple[str, ...], compile_: bool, steps: int, rounds: int, top: int
) -> list[dict]:
    """The rows (see the module docstring), one per pair, provider and cuDNN autotuner setting."""
    cuda = device.type == "cuda"
    rate = matmul_tflops(device) if cuda else None  # a CPU's bf16 rate takes seconds to measure and means little
    settings = (False, True) if cuda else (False,)  # the autotuner is cuDNN's
    rows = []
    for name in pairs:
        _, _, shape, _ = PAIRS[name]
        flops, _ = _work(name, device, shape, WGAN_GP)
        for autotune in settings:
            with cudnn_benchmark(autotune):
                providers = _providers(name, device, compile_)
                best: dict[str, float] = {}
                for _ in range(rounds):  # interleaved: every provider sees the same machine
                    for provider, fn in providers.items():
                        ms, _ = median_ms(fn, device)
                        best[provider] = min(best.get(provider, float("inf")), ms)
                for provider, fn in providers.items():
                    profiled = summary(device_times(fn, device, steps), top)
                    ms = best[provider]
                    tflops = flops / (ms * 1e-3) / 1e12
                    rows.append(
                        {
                            "pair": name,
                            "size": "x".join(map(str, shape)),
                            "provider": provider,
                            "cudnn_benchmark": autotune,
                            "ms": round(ms, 4),
                            # A CPU's operators are the host's own work, timed slower under the profiler.
                            "busy": round(profiled["device_ms"] / ms, 3) if cuda else None,
                            "flops": flops,
                            "tflops": round(tflops, 3),
                            "fraction_of_bf16": round(tflops / rate, 4) if rate else None,
                            **profiled,
                        }
                    )
                del providers
            print(f"  {name}, cudnn.benchmark {autotune}: done", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = []
    for name, size in dict.fromkeys((r["pair"], r["size"]) for r in rows):
        lines += [
            f"\n{name} ({size}), bf16",
            "| provider | cudnn.benchmark | ms | device ms | busy | TFLOP/s | % of bf16 | kernels | largest kinds |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["pair"] == name):
            busy = "-" if r["busy"] is None else f"{100 * r['busy']:.0f}%"
            of_bf16 = "-" if r["fraction_of_bf16"] is None else f"{100 * r['fraction_of_bf16']:.1f}%"
            kinds = ", ".join(f"{kind} {100 * share:.0f}%" for kind, share in list(r["categories"].items())[:3])
            lines.append(
                f"| {r['provider']} | {'on' if r['cudnn_benchmark'] else 'off'} | {r['ms']:.3f} | "
                f"{r['device_ms']:.3f} | {busy} | {r['tflops']:.2f} | "
                f"{of_bf16} | {r['kernels']} | {kinds} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pairs", nargs="+", help=f"default: {CUDA_PAIRS} on CUDA, {CPU_PAIRS} on a CPU")
    parser.add_argument("--compile", action="store_true", help="also the compiled providers (minutes to compile)")
    parser.add_argument("--steps", type=int, default=10, help="steps profiled per provider")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--top", type=int, default=12, help="kernels listed per provider")
    parser.add_argument(
        "--out",
        type=Path,
        help="write the rows as JSON to this file, or into this folder as <card>-step-profile-<date>.json",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    pairs = tuple(args.pairs or (CUDA_PAIRS if device.type == "cuda" else CPU_PAIRS))
    unknown = [name for name in pairs if name not in PAIRS]
    if unknown:
        print(f"step_profile: unknown pair {unknown[0]!r}; one of {', '.join(PAIRS)}", file=sys.stderr)
        return 2
    if device.type != "cuda" and any(PAIRS[name][3] for name in pairs):
        print("step_profile: the sn resnet 128 pair needs CUDA", file=sys.stderr)
        return 2
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    rows = measure(device, pairs, args.compile, args.steps, args.rounds, args.top)
    print(f"# critic steps profiled on {card}, torch {torch.__version__}")
    print(table(rows))
    if args.out:
        report = {"card": card, "date": datetime.date.today().isoformat(), "torch": torch.__version__, "rows": rows}
        out = args.out / f"{card_slug(report)}-step-profile-{report['date']}.json" if args.out.is_dir() else args.out
        out.write_text(json.dumps(report, indent=1))
        print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

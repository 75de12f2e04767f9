"""``python -m benchmarks``: time fastgan against the reference code, the best eager PyTorch and torch.compile.

Prints a markdown table and writes JSON with the machine, card, library versions and date. On a CPU it times
fastgan's PyTorch path (Triton timings need a GPU). It refuses to run under TRITON_INTERPRET, whose timings
would measure the interpreter.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch


def _environment(device: torch.device, copy_gbs: float, bf16_tflops: float) -> dict:
    import fastgan

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    card = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    )
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "card": card,
        "device": str(device),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton_version,
        "fastgan": fastgan.__version__,
        "fastgan_path": "triton" if device.type == "cuda" else "torch (CPU path; Triton timings need a GPU)",
        "copy_bandwidth_gbs": round(copy_gbs, 2),
        # Three significant digits: a CPU without bf16 matrix units runs well under 0.01 TFLOP/s.
        "bf16_matmul_tflops": float(f"{bf16_tflops:.3g}"),
    }


def _measure(case, device, env: dict, rounds: int) -> list[dict]:
    """Time every provider of ``case`` in ``rounds`` interleaved rounds, keeping each one's best median (so that
    no provider is favoured by running first or last on a noisy machine). Whole steps on CUDA: first each
    provider's peak memory (:func:`benchmarks.timing.first_call_peak_mb`)."""
    from .timing import first_call_peak_mb, median_ms

    rows = {}
    peaks = {}
    if device.type == "cuda" and not case.kernel_time:
        for provider, fn in case.providers.items():
            try:
                peaks[provider] = first_call_peak_mb(fn)
            except Exception as exc:  # noqa: BLE001 - recorded by the timing below, which runs it again
                peaks[provider] = None
                print(f"  {provider}: first call failed ({type(exc).__name__})", file=sys.stderr)
    for _ in range(rounds):
        for provider, fn in case.providers.items():
            row = rows.setdefault(
                provider,
                {
                    "op": case.op,
                    "size": case.size,
                    "dtype": str(case.dtype).removeprefix("torch."),
                    "provider": provider,
                },
            )
            if "error" in row:
                continue
            try:
                ms, timer = median_ms(fn, device, cuda_graph=case.kernel_time)
            except Exception as exc:  # noqa: BLE001 - a provider that cannot run is recorded, not fatal
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
                continue
            if ms < row.get("ms", float("inf")):
                row.update(ms=ms, timer=timer)
    if device.type == "cuda" and not case.kernel_time:  # whole steps: how many launches and host waits each
        from .timing import device_work

        for provider, fn in case.providers.items():
            if "ms" in rows[provider]:
                try:
                    rows[provider].update(device_work(fn))
                except Exception as exc:  # noqa: BLE001 - a profiler failure must not cost the timings
                    rows[provider]["work_error"] = f"{type(exc).__name__}: {exc}"[:200]
    for provider, row in rows.items():
        if peaks.get(provider) is not None:
            row["peak_mb"] = round(peaks[provider], 1)
        if "ms" in row and case.bytes is not None:
            row["gbs"] = case.bytes / (row["ms"] * 1e-3) / 1e9
            row["fraction_of_copy"] = row["gbs"] / env["copy_bandwidth_gbs"]
        if case.flops is not None:
            row["flops"], row["arithmetic_intensity"] = case.flops, case.flops / case.traffic
            if "ms" in row:
                row["tflops"] = case.flops / (row["ms"] * 1e-3) / 1e12
                row["fraction_of_bf16_peak"] = row["tflops"] / env["bf16_matmul_tflops"]
    return list(rows.values())


def _write_json(path: Path, env: dict, results: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": env, "results": results}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    parser.add_argument("--quick", action="store_true", help="reference sizes and one mid size, fp32 and bf16 only")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile provider")
    parser.add_argument(
        "--only",
        metavar="TEXT",
        action="append",
        help="run only the cases whose 'op size' (e.g. 'critic step (dcgan 64) 64x3x64x64') contains "
        "TEXT (repeatable: any of them)",
    )
    parser.add_argument(
        "--exclude", metavar="TEXT", action="append", help="skip the cases whose 'op size' contains TEXT (repeatable)"
    )
    parser.add_argument(
        "--providers",
        metavar="TEXT",
        action="append",
        help="time only the providers whose name contains TEXT (repeatable: any of them)",
    )
    parser.add_argument("--json", type=Path, help="write the results here (default: print only)")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args(argv)

    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("refusing to benchmark with TRITON_INTERPRET set: it would time the interpreter", file=sys.stderr)
        return 2
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    from .catalogue import all_cases
    from .report import markdown_table, steps_table
    from .roofline import matmul_tflops
    from .timing import copy_bandwidth_gbs, warm_process

    torch.manual_seed(0)
    copy_gbs = copy_bandwidth_gbs(device, megabytes=256 if device.type == "cuda" else 64)
    env = _environment(device, copy_gbs, matmul_tflops(device))
    warm_mb = warm_process(device)  # before any provider's first call: peaks without the libraries' workspaces
    if warm_mb is not None:
        env["process_warm_mb"] = round(warm_mb, 1)
    print(f"# fastgan benchmarks on {env['card']} ({env['date']})")
    print(
        f"torch {env['torch']}, triton {env['triton']}; fastgan path: {env['fastgan_path']}; "
        f"measured copy bandwidth {copy_gbs:.1f} GB/s, bf16 matmul {env['bf16_matmul_tflops']:.3g} TFLOP/s\n",
        flush=True,
    )
    results = []
    for case in all_cases(device, quick=args.quick, compile_=args.compile):
        label = f"{case.op} {case.size}"
        if args.only and not any(text in label for text in args.only):
            continue
        if args.exclude and any(text in label for text in args.exclude):
            continue
        if args.providers:
            case.providers = {p: fn for p, fn in case.providers.items() if any(t in p for t in args.providers)}
        # Interleaved rounds where the host's noise shows: on a CPU, and for whole steps on CUDA (host included).
        rounds = 1 if device.type == "cuda" and case.kernel_time else 3
        results.extend(_measure(case, device, env, rounds=rounds))
        print(f"  {case.op} {case.size} {case.dtype}: done", file=sys.stderr, flush=True)
        if args.json:  # after every case: a run stopped by a time limit keeps what it measured
            _write_json(args.json, env, results)
    table = markdown_table(results) + "\n\n" + steps_table(results)
    print(table)
    errors = sorted({f"{r['provider']} on {r['op']}: {r['error']}" for r in results if "error" in r})
    if errors:
        print("\nProviders that could not run:\n" + "\n".join(f"- {e}" for e in errors))
    if args.json:
        _write_json(args.json, env, results)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

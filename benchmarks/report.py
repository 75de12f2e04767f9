"""Tables and the GPU section of RESULTS.md from the runner's JSON.

``python -m benchmarks.report A.json [B.json ...] --out results/CARD-DATE.json --results-md RESULTS.md
[--tests "N passed"]`` merges runs of one machine (later files add the rows earlier ones lack, e.g. the
torch.compile provider from a --quick run), writes the merged JSON and rewrites that card's part of RESULTS.md
(between its GPU markers; a card not there yet gets a new part at the top of the GPU section) with the card,
versions, copy bandwidth, test outcome, tables and the pictures of :mod:`benchmarks.plots` (PNGs beside the
JSON).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .plots import draw_all

PROVIDERS = ("fastgan", "reference", "eager", "compile")


def markers(slug: str) -> tuple[str, str]:
    """The comments around one card's part of RESULTS.md's GPU section."""
    return f"<!-- gpu-results:begin {slug} -->", f"<!-- gpu-results:end {slug} -->"


def _cell(row: dict) -> str:
    if "ms" in row:
        return f"{row['ms']:.4f}"
    return "error" if "error" in row else "-"


def _ratio(row: dict, fast: dict) -> str:
    return f"{row['ms'] / fast['ms']:.2f}" if "ms" in row and "ms" in fast else "-"


def markdown_table(results: list[dict]) -> str:
    """One line per op x size x dtype: each provider's median ms, its time over fastgan's, GB/s, % of copy."""
    groups: dict[tuple, dict[str, dict]] = {}
    first_seen: dict[tuple, int] = {}
    for row in results:
        if _is_step(row):
            continue  # in steps_table
        groups.setdefault((row["op"], row["size"], row["dtype"]), {})[row["provider"]] = row
        for key in (("op", row["op"]), ("size", row["op"], row["size"]), ("dtype", row["dtype"])):
            first_seen.setdefault(key, len(first_seen))
    # Each op's sizes together, in the order the cases were run, whatever order merged runs listed them in.
    order = sorted(
        groups, key=lambda k: (first_seen["op", k[0]], first_seen["size", k[0], k[1]], first_seen["dtype", k[2]])
    )
    lines = [
        "| op | size | dtype | fastgan ms | reference ms | eager ms | compile ms | x reference | x eager | x compile "
        "| GB/s | % copy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for op, size, dtype in order:
        rows = [groups[op, size, dtype].get(p, {}) for p in PROVIDERS]
        fast = rows[0]
        gbs = f"{fast['gbs']:.1f}" if "gbs" in fast else "-"
        frac = f"{100 * fast['fraction_of_copy']:.0f}%" if "fraction_of_copy" in fast else "-"
        cells = [_cell(r) for r in rows] + [_ratio(r, fast) for r in rows[1:]] + [gbs, frac]
        lines.append(f"| {op} | {size} | {dtype} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _is_step(row: dict) -> bool:
    return row["op"].startswith(("critic step", "iteration ("))


# Column order; a run's table has the columns of the providers it measured. ("fastgan compile capturable" ran on
# an H200 on 2026-11-27 only: its rows are in that card's results.)
STEP_PROVIDERS = (
    "reference",
    "fastgan",
    "fastgan torch path",
    "fastgan compile",
    "fastgan compile capturable",
    "fastgan graph",
    "fastgan compile+graph",
    "func compile",
    "trace compile",
    "reference bf16",
    "fastgan bf16",
    "fastgan compile bf16",
    "fastgan graph bf16",
    "fastgan compile+graph bf16",
    "fastgan graph bf16 nchw",
)
FP32_ALTERNATIVES = ("func compile", "trace compile")  # a user's own torch.compile of the step


def _best(ms: dict, names) -> tuple[str, float] | None:
    """The fastest of ``names`` measured, as (provider, ms)."""
    return min(((p, ms[p]) for p in names if p in ms), key=lambda pv: pv[1], default=None)


def _times(a: tuple | None, b: tuple | None) -> str:
    return f"{b[1] / a[1]:.2f}" if a and b else "-"


def steps_table(results: list[dict]) -> str:
    """Whole-step cases (providers beyond the op table's): each provider's median ms; the best fastgan
    provider's speed-up over the reference's code, the best fp32 fastgan mode's over a user's own torch.compile, the
    best bf16 fastgan mode's over the reference's step in bf16 (``reference bf16``); the best fastgan provider's TFLOP/s
    and fraction of the measured bf16 matmul rate; peak memory of the reference's step and the best fastgan one."""
    groups: dict[tuple, dict[str, dict]] = {}
    for row in results:
        if _is_step(row):
            groups.setdefault((row["op"], row["size"]), {})[row["provider"]] = row
    if not groups:
        return ""
    providers = [p for p in STEP_PROVIDERS if any(p in by for by in groups.values())]
    head = " | ".join(f"{p} ms" for p in providers)
    lines = [
        f"| step | size | {head} | best fastgan x reference | fp32: best fastgan x best compile | bf16: best "
        "fastgan x reference bf16 | best fastgan TFLOP/s | % of bf16 matmul | peak MiB reference / best fastgan |",
        "|---|---|" + "---|" * (len(providers) + 6),
    ]
    for (op, size), by in groups.items():
        ms = {p: by[p]["ms"] for p in providers if "ms" in by.get(p, {})}
        ours = _best(ms, [p for p in ms if p.startswith("fastgan")])
        ours32 = _best(ms, [p for p in ms if p.startswith("fastgan") and "bf16" not in p])
        ours16 = _best(ms, [p for p in ms if p.startswith("fastgan") and "bf16" in p])
        best = by[ours[0]] if ours else {}
        rate = f"{best['tflops']:.1f}" if "tflops" in best else "-"
        fraction = f"{100 * best['fraction_of_bf16_peak']:.1f}%" if "fraction_of_bf16_peak" in best else "-"
        peaks = (
            f"{by['reference']['peak_mb']:.0f} / {best['peak_mb']:.0f}"
            if "peak_mb" in by.get("reference", {}) and "peak_mb" in best
            else "-"
        )
        cells = [_cell(by.get(p, {})) for p in providers]
        lines.append(
            f"| {op} | {size} | " + " | ".join(cells) + f" | {_times(ours, _best(ms, ['reference']))} | "
            f"{_times(ours32, _best(ms, FP32_ALTERNATIVES))} | {_times(ours16, _best(ms, ['reference bf16']))} | "
            f"{rate} | {fraction} | {peaks} |"
        )
    if any("kernels" in row for by in groups.values() for row in by.values()):
        lines += [
            "",
            "Device work per call (`benchmarks.timing.device_work`): device operations / launch calls / "
            "memcpy calls / synchronize calls (the host's time in them) / sync-debug warnings; where the "
            "runtime calls were not recorded, device operations / sync-debug warnings:",
            "",
            f"| step | size | {' | '.join(providers)} |",
            "|---|---|" + "---|" * len(providers),
        ]
        for (op, size), by in groups.items():
            lines.append(f"| {op} | {size} | " + " | ".join(_work_cell(by.get(p, {})) for p in providers) + " |")
    return "\n".join(lines)


def _work_cell(row: dict) -> str:
    if "kernels" not in row:
        return "-"
    if "launches" not in row:
        return f"{row['kernels']} / {row['syncs']}"
    return (
        f"{row['kernels']} / {row['launches']} / {row['copies']} / {row['waits']} ({row['wait_us']:g} us) / "
        f"{row['syncs']}"
    )


def merge(reports: list[dict]) -> dict:
    """The first report's environment, and every row of the first report plus the rows later ones add."""
    rows: dict[tuple, dict] = {}
    for report in reports:
        for row in report["results"]:
            key = (row["op"], row["size"], row["dtype"], row["provider"])
            if key not in rows or ("ms" not in rows[key] and "ms" in row):
                rows[key] = row
    return {"environment": reports[0]["environment"], "results": list(rows.values())}


def card_slug(environment: dict) -> str:
    """The card's name in lower case and dashes, e.g. ``nvidia-h100-80gb-hbm3``."""
    return re.sub(r"[^a-z0-9]+", "-", environment["card"].lower()).strip("-")


def results_name(environment: dict) -> str:
    """``<card>-<date>.json``, e.g. ``nvidia-h100-80gb-hbm3-2026-11-26.json``."""
    return f"{card_slug(environment)}-{environment['date'][:10]}.json"


def launch_table(launch: dict) -> str:
    """The rows of ``python -m benchmarks.launch_cost``: host microseconds per call, fastgan (direct launches,
    and through Triton's launch path for the single ops) against the code it replaces (ATen's ops, the
    reference's loop)."""
    lines = [
        "Host time of launch-bound calls (`benchmarks.launch_cost`, tiny tensors; `benchmarks.host_ops`):",
        "",
        "| call | fastgan host us | through Triton's launch path | replaced code host us | fastgan / replaced |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['op']} | {r['fastgan_us']} | {r.get('triton_path_us', '-')} | {r['aten_us']} | {r['ratio']} |"
        for r in launch["rows"]
    ]
    return "\n".join(lines)


def gpu_section(report: dict, json_name: str, tests: str | None, pictures: list[str] = ()) -> str:
    env = report["environment"]
    timers = sorted({r.get("timer", "?") for r in report["results"] if "ms" in r})
    begin, end = markers(card_slug(env))
    lines = [
        begin,
        f"### {env['card']}, {env['date'][:10]} ({json_name})",
        "",
        f"Written by `benchmarks/gpu_check.sh`: torch {env['torch']}, triton {env['triton']}, {env['machine']}; "
        f"measured copy bandwidth {env['copy_bandwidth_gbs']:.0f} GB/s; timers {', '.join(timers)} (single ops "
        "are replayed in CUDA graphs, so they show GPU time; whole steps run as a user runs them, host included)."
        + (f" Compiled-Triton test suite: {tests}." if tests else ""),
    ]
    ops = any(not _is_step(r) for r in report["results"])
    lines += ["", launch_table(report["launch"])] if report.get("launch") else []
    lines += ["", markdown_table(report["results"])] if ops else []
    lines += ["", steps_table(report["results"])]
    lines += ["", " ".join(f"![{Path(p).stem}](results/{p})" for p in pictures)] if pictures else []
    lines.append(end)
    return "\n".join(lines)


def write_gpu_section(results_md: Path, section: str, card: str) -> None:
    """Replace ``card``'s part of the GPU section of ``results_md``, or add it at the top of that section."""
    text = results_md.read_text()
    begin, end = markers(card)
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.replace("## GPU\n", "## GPU\n\n" + section + "\n", 1)
    results_md.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="the runner's JSON files, first one's machine")
    parser.add_argument("--out-dir", type=Path, required=True, help="where <card>-<date>.json is written")
    parser.add_argument("--results-md", type=Path, help="RESULTS.md whose GPU section is rewritten")
    parser.add_argument("--tests", help="the test suite's outcome line, quoted in the section")
    parser.add_argument("--launch", type=Path, help="the JSON of python -m benchmarks.launch_cost")
    args = parser.parse_args(argv)
    report = merge([json.loads(p.read_text()) for p in args.inputs])
    if args.launch:
        report["launch"] = json.loads(args.launch.read_text())
    name = results_name(report["environment"])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / name).write_text(json.dumps(report, indent=1) + "\n")
    pictures = [p.name for p in draw_all(report, args.out_dir / name.removesuffix(".json"))]
    if args.results_md:
        write_gpu_section(
            args.results_md, gpu_section(report, name, args.tests, pictures), card_slug(report["environment"])
        )
    print(f"wrote {args.out_dir / name}" + (f" and the GPU section of {args.results_md}" if args.results_md else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The pictures kernel benchmarkers look at, drawn from one results JSON (as Triton's ``perf_report`` and
Liger-Kernel's plots draw theirs):

- ``bandwidth``: GB/s of every single-op provider against the op's size (MB moved), one panel per op and dtype,
  the measured copy bandwidth as a line;
- ``steps``: each whole-step case's time per provider (bars, log scale);
- ``roofline``: every critic-step row's FLOP/s against its arithmetic intensity (FLOPs over eager traffic), under
  the ceilings of the measured bf16 matmul rate and copy bandwidth.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt
import matplotlib.ticker


def _single_ops(rows: list[dict]) -> dict[tuple[str, str], dict[str, list[tuple[float, float]]]]:
    """(op, dtype) -> provider -> [(MB moved, GB/s)], sorted by size."""
    panels: dict[tuple[str, str], dict[str, list]] = {}
    for r in rows:
        if "gbs" in r:
            megabytes = r["gbs"] * r["ms"] * 1e-3 * 1e3  # GB/s x s = GB; in MB
            panels.setdefault((r["op"], r["dtype"]), {}).setdefault(r["provider"], []).append((megabytes, r["gbs"]))
    for providers in panels.values():
        for points in providers.values():
            points.sort()
    return panels


def bandwidth(report: dict, path: Path) -> bool:
    panels = _single_ops(report["results"])
    if not panels:
        return False
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
    copy = report["environment"]["copy_bandwidth_gbs"]
    for ax, ((op, dtype), providers) in zip(axes.flat, panels.items()):
        for provider, points in providers.items():
            ax.plot(*zip(*points), marker="o", label=provider)
        ax.axhline(copy, color="black", linestyle="--", linewidth=1, label="copy")
        ax.set(xscale="log", xlabel="MB moved", ylabel="GB/s", title=f"{op} ({dtype})")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    return _save(fig, path, report)


def steps(report: dict, path: Path) -> bool:
    cases: dict[str, dict[str, float]] = {}
    for r in report["results"]:
        if "gbs" not in r and "ms" in r:
            cases.setdefault(f"{r['op']} {r['size']}", {})[r["provider"]] = r["ms"]
    if not cases:
        return False
    fig, axes = plt.subplots(
        len(cases), 1, figsize=(9, 0.32 * sum(len(v) for v in cases.values()) + 1.2 * len(cases)), squeeze=False
    )
    for ax, (case, times) in zip(axes.flat, cases.items()):
        names = sorted(times, key=times.get)
        ax.barh(
            names,
            [times[n] for n in names],
            color=["tab:blue" if n.startswith("fastgan") else "tab:gray" for n in names],
        )
        ax.set(xscale="log", xlabel="ms per call (host included)", title=case)
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path, report)


def roofline(report: dict, path: Path) -> bool:
    points = [r for r in report["results"] if "tflops" in r and "arithmetic_intensity" in r]
    if not points:
        return False
    env = report["environment"]
    peak, copy = env["bf16_matmul_tflops"], env["copy_bandwidth_gbs"]
    lo = min(r["arithmetic_intensity"] for r in points) / 4
    hi = max(max(r["arithmetic_intensity"] for r in points) * 4, 4 * peak * 1e3 / copy)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(
        xs,
        [min(peak, x * copy / 1e3) for x in xs],
        color="black",
        linewidth=1.5,
        label=f"ceilings: bf16 matmul {peak:.0f} TFLOP/s, copy {copy:.0f} GB/s",
    )
    for r in points:
        marker = "s" if r["dtype"] == "bfloat16" else "o"
        ax.scatter(
            r["arithmetic_intensity"],
            r["tflops"],
            marker=marker,
            s=22,
            color="tab:blue" if r["provider"].startswith("fastgan") else "tab:gray",
        )
        ax.annotate(
            f"{r['op'].split('(')[-1].rstrip(')')} {r['size'].split('x')[0]}: {r['provider']}",
            (r["arithmetic_intensity"], r["tflops"]),
            fontsize=5,
            alpha=0.8,
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="arithmetic intensity (FLOPs per byte of eager traffic)",
        ylabel="TFLOP/s",
        title="Critic steps on the roofline (blue: fastgan; squares: bf16)",
    )
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path, report)


DRAWERS = {"bandwidth": bandwidth, "steps": steps, "roofline": roofline}


def _save(fig, path: Path, report: dict) -> bool:
    env = report["environment"]
    fig.suptitle(f"{env['card']}, torch {env['torch']}, {env['date'][:10]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def draw_all(report: dict, stem: Path) -> list[Path]:
    """Draw every picture the report has rows for, as ``<stem>-<kind>.png``; returns the paths written."""
    written = []
    for kind, draw in DRAWERS.items():
        path = stem.with_name(f"{stem.name}-{kind}.png")
        if draw(report, path):
            written.append(path)
    return written

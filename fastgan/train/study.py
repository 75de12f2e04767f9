"""``fastgan study``: presets x data sets x seeds, in parallel processes, resumable, summarised in tables beside
the published rows, a figure of samples and learning curves.

The 2-D sets (ring, grid) follow the VEEGAN / PacGAN protocol, beside PacGAN's rows; Fashion-MNIST follows Lucic
et al.'s (``--protocol lucic2018``: the lowest FID of each run), beside their table and PA-GAN's NS GAN.

Each run is a plain ``fastgan train`` in its own process (so a study is exactly the runs a user would start by
hand) writing to ``OUT/runs/<loss>-<data>-s<seed>/``; a run whose ``summary.json`` exists is not run again, so an
interrupted study continues where it stopped. Then ``OUT/study.md`` and ``OUT/study.json`` (mean and spread over
the seeds: of modes, high-quality fraction and reverse KL on 2-D sets, of the best FID on images; wall time and
steps per second), ``OUT/samples.png`` (2-D sets: one panel per preset x data set, first seed),
``OUT/image-samples.png`` (one grid per preset, first seed) and ``OUT/curves.png`` / ``OUT/fid-curves.png``
(the metrics over wall-clock training seconds, every seed).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import torch

from .data import grid_modes, ring_modes
from .settings import RECIPE_NAMES

TOY_STUDY_SETS = ("ring", "grid")
IMAGE_STUDY_SETS = ("fashion-mnist",)
STUDY_SETS = TOY_STUDY_SETS + IMAGE_STUDY_SETS
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
# PacGAN (Lin et al., 2018), Table 1: its best rows on the same protocol (2,500 samples; modes, high-quality
# fraction, reverse KL).
PACGAN_ROWS = {"ring": ("PacGAN2", 7.9, 0.956, 0.07), "grid": ("PacGAN4", 24.8, 0.936, 0.04)}
# Lucic et al. (NeurIPS 2018), best FID on Fashion-MNIST after a 100-setting search per model, mean ± std (as
# quoted by Dai & Wipf, ICLR 2019, Table 1), keyed by the preset that runs the same loss and penalty; PA-GAN
# (Zhang & Khoreva, 2019) on the same protocol: NS GAN at 20 epochs.
LUCIC_ROWS = {
    "wgan": ("WGAN", 21.5, 1.6),
    "wgan-gp": ("WGAN-GP", 24.5, 2.1),
    "lsgan": ("LSGAN", 30.7, 2.2),
    "ns": ("NS GAN", 26.5, 1.6),
    "dragan": ("DRAGAN", 27.7, 1.2),
}
PUBLISHED_IMAGE_ROWS = [("Lucic et al.", name, mean, std) for name, mean, std in LUCIC_ROWS.values()] + [
    ("Lucic et al.", "MM GAN", 29.6, 1.6),
    ("Lucic et al.", "BEGAN", 22.9, 0.9),
    ("PA-GAN", "NS GAN, 20 epochs", 18.4, 1.5),
    ("PA-GAN", "NS GAN, no epoch cap", 15.8, 1.1),
]


def run_dir(out: Path, loss: str, data: str, seed: int) -> Path:
    return out / "runs" / f"{loss}-{data}-s{seed}"


def _command(loss: str, data: str, seed: int, directory: Path, extra: list[str], image_extra: list[str]) -> list[str]:
    if data in IMAGE_STUDY_SETS:
        where = ["--protocol", "lucic2018", *image_extra]
    else:
        where = ["--data", data, "--device", "cpu"]
    return [
        sys.executable,
        "-m",
        "fastgan.cli",
        "train",
        "--loss",
        loss,
        *where,
        "--seed",
        str(seed),
        "--quiet",
        "--out",
        str(directory),
        *extra,
    ]


def run_study(
    out: str | Path,
    losses=RECIPE_NAMES,
    sets=TOY_STUDY_SETS,
    seeds=DEFAULT_SEEDS,
    jobs: int | None = None,
    extra: list[str] | None = None,
    quiet: bool = False,
    image_extra: list[str] | None = None,
) -> dict:
    """Run every (loss, data set, seed) not yet done, ``jobs`` at a time, then write the tables and figures.

    Args:
        out: the study's directory.
        losses, sets, seeds: what to run (presets of ``fastgan train``, data sets of ``STUDY_SETS``, seeds).
        jobs: runs at once (default: one per CPU core, each with one thread; one with an image set).
        extra: more ``fastgan train`` options for every run (e.g. ``["--steps", "200"]``).
        quiet: no progress bar.
        image_extra: more options for the image runs only (``--fid``, ``--fid-weights``, ``--device``).

    Returns the study's results (also ``study.json``). Raises ``RuntimeError`` naming the runs that failed
    (their logs are ``train.log`` in their directories); the others are kept.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    for loss in losses:
        if loss not in RECIPE_NAMES:
            raise ValueError(f"unknown preset {loss!r}; choose from {', '.join(RECIPE_NAMES)}")
    for data in sets:
        if data not in STUDY_SETS:
            raise ValueError(f"unknown data set {data!r} for a study; choose from {', '.join(STUDY_SETS)}")
    jobs = jobs or (1 if set(sets) & set(IMAGE_STUDY_SETS) else os.cpu_count() or 1)
    todo = [
        (loss, data, seed)
        for data in sets
        for loss in losses
        for seed in seeds
        if not (run_dir(out, loss, data, seed) / "summary.json").exists()
    ]
    total = len(losses) * len(sets) * len(seeds)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // jobs))}
    failed = []

    def one(loss, data, seed):
        directory = run_dir(out, loss, data, seed)
        directory.mkdir(parents=True, exist_ok=True)
        # A run stopped before its summary continues from its checkpoint, or starts again without one.
        again = ["--resume"] if (directory / "checkpoint.pt").exists() else ["--overwrite"]
        with open(directory / "train.log", "a") as log:
            command = _command(loss, data, seed, directory, [*(extra or []), *again], image_extra or [])
            rc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        return (loss, data, seed), rc

    with tqdm(total=total, initial=total - len(todo), desc="study", disable=quiet, dynamic_ncols=True) as bar:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in as_completed([pool.submit(one, *run) for run in todo]):
                run, rc = future.result()
                if rc != 0:
                    failed.append(run)
                bar.update(1)
                bar.set_postfix_str(f"{run[0]} {run[1]} s{run[2]}")
    results = summarise(out, losses, sets, seeds)
    if failed:
        names = ", ".join(f"{loss}-{data}-s{seed}" for loss, data, seed in failed)
        raise RuntimeError(f"{len(failed)} run(s) failed: {names}; see train.log in their directories")
    return results


def _spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "min": min(values), "max": max(values)}


def _image_row(loss: str, data: str, runs: list[dict]) -> dict:
    best = [r["best"] for r in runs]
    return {
        "loss": loss,
        "data": data,
        "seeds": [r["settings"]["seed"] for r in runs],
        "fid_images": runs[0]["settings"]["fid"],
        "best_fid": _spread([b["fid"] for b in best]),
        "best_step": [b["step"] for b in best],
        "steps": runs[0]["steps"],
        "critic_updates": runs[0]["steps"] * runs[0]["settings"]["n_critic"],
        "train_seconds": _spread([r["final"]["wall_seconds"] for r in runs]),
        "wall_seconds": _spread([r["wall_seconds"] for r in runs]),
        "machine": sorted({r["device"] for r in runs}),
        "published": LUCIC_ROWS.get(loss),
    }


def summarise(out: Path, losses, sets, seeds) -> dict:
    """Collect the finished runs into ``study.json`` / ``study.md`` and draw the figures."""
    rows = []
    for data in sets:
        for loss in losses:
            runs = [
                json.loads((run_dir(out, loss, data, s) / "summary.json").read_text())
                for s in seeds
                if (run_dir(out, loss, data, s) / "summary.json").exists()
            ]
            if not runs:
                continue
            if data in IMAGE_STUDY_SETS:
                if all(r.get("best") for r in runs):
                    rows.append(_image_row(loss, data, runs))
                continue
            finals = [r["final"] for r in runs]
            row = {
                "loss": loss,
                "data": data,
                "seeds": [r["settings"]["seed"] for r in runs],
                "total_modes": finals[0]["total_modes"],
                "all_modes": sum(f["modes"] == f["total_modes"] for f in finals),
            }
            for key in ("modes", "high_quality"):
                row[key] = _spread([f[key] for f in finals])
            kl = [f["reverse_kl"] for f in finals if f["reverse_kl"] is not None]
            row["reverse_kl"] = _spread(kl) if kl else None
            row["wall_seconds"] = _spread([r["wall_seconds"] for r in runs])
            row["steps_per_second"] = _spread([r["steps"] / r["wall_seconds"] for r in runs])
            rows.append(row)
    results = {
        "rows": rows,
        "pacgan": {d: dict(zip(("name", "modes", "high_quality", "reverse_kl"), v)) for d, v in PACGAN_ROWS.items()},
        "published_fid": [dict(zip(("source", "model", "mean", "std"), r)) for r in PUBLISHED_IMAGE_ROWS],
    }
    (out / "study.json").write_text(json.dumps(results, indent=1) + "\n")
    tables = [t for t in (markdown_table(results), image_table(results)) if t]
    (out / "study.md").write_text("\n\n".join(tables) + "\n")
    toy_rows = [r for r in rows if r["data"] in TOY_STUDY_SETS]
    image_rows = [r for r in rows if r["data"] in IMAGE_STUDY_SETS]
    if toy_rows:
        plot_samples(out, toy_rows)
        plot_mode_curves(out, toy_rows)
    if image_rows:
        plot_image_samples(out, image_rows)
        plot_fid_curves(out, image_rows)
    return results


def markdown_table(results: dict) -> str:
    """Mean ± spread over the seeds per preset and data set, PacGAN's best row first in each set."""
    if not any(r["data"] in TOY_STUDY_SETS for r in results["rows"]):
        return ""
    lines = [
        "| data | preset | seeds with all modes | modes | high quality | reverse KL | wall s | steps/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for data in TOY_STUDY_SETS:
        rows = [r for r in results["rows"] if r["data"] == data]
        if not rows:
            continue
        p = results["pacgan"][data]
        lines.append(
            f"| {data} | {p['name']} (published) | - | {p['modes']} | {100 * p['high_quality']:.1f}% | "
            f"{p['reverse_kl']:.2f} | - | - |"
        )
        for r in rows:
            kl = r["reverse_kl"]
            kl_text = f"{kl['mean']:.3f} ± {kl['std']:.3f}" if kl else "-"
            lines.append(
                f"| {data} | {r['loss']} | {r['all_modes']}/{len(r['seeds'])} | "
                f"{r['modes']['mean']:.1f} ± {r['modes']['std']:.1f} | "
                f"{100 * r['high_quality']['mean']:.1f} ± {100 * r['high_quality']['std']:.1f}% | {kl_text} | "
                f"{r['wall_seconds']['mean']:.0f} | {r['steps_per_second']['mean']:.0f} |"
            )
    return "\n".join(lines)


def image_table(results: dict) -> str:
    """Best FID per preset (mean ± std over the seeds, at the N images each run scored), with its steps, time and
    machine, beside the published row of the same loss; then the published rows."""
    rows = [r for r in results["rows"] if r["data"] in IMAGE_STUDY_SETS]
    if not rows:
        return ""
    lines = [
        "| data | preset | seeds | best FID | FID images | best at step | critic updates | train s | machine | "
        "published (Lucic et al.) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        published = f"{r['published'][0]} {r['published'][1]} ± {r['published'][2]}" if r["published"] else "-"
        fid = r["best_fid"]
        lines.append(
            f"| {r['data']} | {r['loss']} | {len(r['seeds'])} | {fid['mean']:.1f} ± {fid['std']:.1f} | "
            f"{r['fid_images']} | {', '.join(map(str, r['best_step']))} | {r['critic_updates']} | "
            f"{r['train_seconds']['mean']:.0f} | {', '.join(r['machine'])} | {published} |"
        )
    lines += ["", "| published | model | FID (10,000 images) |", "|---|---|---|"]
    lines += [f"| {p['source']} | {p['model']} | {p['mean']} ± {p['std']} |" for p in results["published_fid"]]
    return "\n".join(lines)


def plot_image_samples(out: Path, rows: list[dict]) -> None:
    """One 8 x 8 grid per preset: the first seed's final samples (``samples.pt``)."""
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    from .plots import matplotlib  # noqa: F401 - selects the file-only backend

    fig, axes = plt.subplots(1, len(rows), figsize=(2.6 * len(rows), 2.9), squeeze=False)
    for ax, row in zip(axes[0], rows):
        samples = torch.load(run_dir(out, row["loss"], row["data"], row["seeds"][0]) / "samples.pt", weights_only=True)
        grid = make_grid((samples[:64].float().clamp(-1, 1) + 1) / 2, nrow=8, padding=1)
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"{row['loss']}: best FID {row['best_fid']['mean']:.1f}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "image-samples.png", dpi=110)
    plt.close(fig)


def plot_fid_curves(out: Path, rows: list[dict]) -> None:
    """FID over wall-clock training seconds, one line per run, one colour per preset."""
    import matplotlib.pyplot as plt

    from .plots import matplotlib  # noqa: F401 - selects the file-only backend

    fig, ax = plt.subplots(figsize=(6.5, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in enumerate(rows):
        for k, seed in enumerate(row["seeds"]):
            path = run_dir(out, row["loss"], row["data"], seed) / "metrics.jsonl"
            points = [json.loads(line) for line in path.read_text().splitlines()]
            points = [p for p in points if "fid" in p]
            ax.plot(
                [p["wall_seconds"] for p in points],
                [p["fid"] for p in points],
                color=colours[i % len(colours)],
                lw=0.8,
                marker=".",
                label=row["loss"] if k == 0 else None,
            )
    ax.set_yscale("log")
    ax.set_xlabel("wall-clock training seconds (evaluation left out)", fontsize=8)
    ax.set_ylabel(f"FID ({rows[0]['fid_images']} images)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fid-curves.png", dpi=110)
    plt.close(fig)


def plot_samples(out: Path, rows: list[dict]) -> None:
    """One panel per preset x data set: the first seed's final samples over the modes' 3-sigma discs."""
    import matplotlib.pyplot as plt

    from .plots import matplotlib  # noqa: F401 - selects the file-only backend

    sets = [d for d in TOY_STUDY_SETS if any(r["data"] == d for r in rows)]
    losses = list(dict.fromkeys(r["loss"] for r in rows))
    fig, axes = plt.subplots(len(sets), len(losses), figsize=(2.4 * len(losses), 2.5 * len(sets)), squeeze=False)
    for i, data in enumerate(sets):
        modes = ring_modes() if data == "ring" else grid_modes()
        for j, loss in enumerate(losses):
            ax = axes[i][j]
            ax.set_xticks([]), ax.set_yticks([])
            row = next((r for r in rows if r["data"] == data and r["loss"] == loss), None)
            if row is None:
                ax.set_axis_off()
                continue
            samples = torch.load(run_dir(out, loss, data, row["seeds"][0]) / "samples.pt", weights_only=True)
            ax.scatter(samples[:, 0], samples[:, 1], s=1, c="#d62728", alpha=0.5)
            for x, y in modes.centers.tolist():
                ax.add_patch(plt.Circle((x, y), 3 * modes.std, fill=False, color="#1f77b4", lw=0.5))
            reach = 1.5 if data == "ring" else 5.5
            ax.set_xlim(-reach, reach), ax.set_ylim(-reach, reach), ax.set_aspect("equal")
            ax.set_title(f"{loss}, {data}: {100 * row['high_quality']['mean']:.0f}% hq", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=110)
    plt.close(fig)


def plot_mode_curves(out: Path, rows: list[dict]) -> None:
    """High-quality fraction and reverse KL over wall-clock time, one line per run, one colour per preset."""
    import matplotlib.pyplot as plt

    from .plots import matplotlib  # noqa: F401 - selects the file-only backend

    sets = [d for d in TOY_STUDY_SETS if any(r["data"] == d for r in rows)]
    fig, axes = plt.subplots(len(sets), 2, figsize=(10, 3.2 * len(sets)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    losses = list(dict.fromkeys(r["loss"] for r in rows))
    for i, data in enumerate(sets):
        for row in (r for r in rows if r["data"] == data):
            colour = colours[losses.index(row["loss"]) % len(colours)]
            for k, seed in enumerate(row["seeds"]):
                path = run_dir(out, row["loss"], data, seed) / "metrics.jsonl"
                history = [json.loads(line) for line in path.read_text().splitlines()]
                points = [h for h in history if "wall_seconds" in h and "high_quality" in h]
                label = row["loss"] if k == 0 else None
                wall = [h["wall_seconds"] for h in points]
                axes[i][0].plot(wall, [h["high_quality"] for h in points], color=colour, lw=0.8, label=label)
                kl = [(h["wall_seconds"], h["reverse_kl"]) for h in points if h["reverse_kl"] is not None]
                if kl:
                    axes[i][1].plot(*zip(*kl), color=colour, lw=0.8, label=label)
        for j, title in enumerate(("high-quality fraction", "reverse KL")):
            axes[i][j].set_title(f"{data}: {title}", fontsize=9)
            axes[i][j].set_xlabel("wall-clock seconds", fontsize=8)
            axes[i][j].legend(fontsize=7)
        axes[i][1].set_yscale("symlog", linthresh=0.01)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)

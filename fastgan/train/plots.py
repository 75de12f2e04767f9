"""Pictures of a run: generated samples and training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .data import Modes  # noqa: E402


def plot_samples_2d(samples: torch.Tensor, real: torch.Tensor, modes: Modes | None, path: Path, title: str) -> None:
    """Scatter of generated 2-D samples over real ones, with each mode's 3-sigma disc."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.scatter(real[:, 0], real[:, 1], s=3, c="#bbbbbb", label="real")
    ax.scatter(samples[:, 0], samples[:, 1], s=3, c="#d62728", alpha=0.6, label="generated")
    if modes is not None:
        for x, y in modes.centers.tolist():
            ax.add_patch(plt.Circle((x, y), 3 * modes.std, fill=False, color="#1f77b4", lw=0.8))
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8, markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_image_grid(images: torch.Tensor, path: Path) -> None:
    """An 8-wide grid of (N, C, H, W) images in [-1, 1] (a conditional run's 8 per class: a class per row)."""
    from torchvision.utils import save_image

    save_image(images.detach().cpu(), str(path), nrow=8, normalize=True, value_range=(-1, 1))


def png_array(path: Path):
    """A PNG file as an (H, W, 3) uint8 array (for TensorBoard)."""
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def plot_curves(history: list[dict], path: Path) -> None:
    """Losses, Wasserstein estimate, penalty, gradient norms, (2-D sets) mode metrics and (``--fid``) FID and KID
    over the steps."""
    history = [{**h, "kid_x100": 100 * h["kid"]} if "kid" in h else h for h in history]
    steps = [h["step"] for h in history]

    def series(key):
        return [h.get(key) for h in history]

    panels = [
        ("losses", [("critic", "d_loss"), ("generator", "g_loss")]),
        ("critic gap (Wasserstein estimate)", [("E[D(real)] - E[D(fake)]", "wasserstein")]),
        ("penalty", [("penalty (unweighted)", "penalty")]),
        ("per-sample gradient norm", [("mean", "grad_norm_mean"), ("max", "grad_norm_max")]),
    ]
    if any("high_quality" in h for h in history):
        panels.append(("modes", [("high-quality fraction", "high_quality"), ("reverse KL", "reverse_kl")]))
    if any("fid" in h for h in history):
        panels.append(("image metrics", [("FID", "fid"), ("KID x 100", "kid_x100")]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (title, lines) in zip(axes, panels):
        for label, key in lines:
            points = [(s, v) for s, v in zip(steps, series(key)) if v is not None]
            if points:
                ax.plot(*zip(*points), label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("generator step", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

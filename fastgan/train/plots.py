"""Pictures of a run: generated samples and training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt
import torch

from .data import Modes


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


# Grid cells are enlarged (nearest neighbour) to at least this many pixels a side: 16x16 samples stay visible.
MIN_CELL = 64


def save_image_grid(images: torch.Tensor, path: Path, row_names: list[str] | None = None) -> None:
    """An 8-wide grid of (N, C, H, W) images in [-1, 1], each enlarged to at least ``MIN_CELL`` pixels a side; a
    conditional run's (8 per class, a class per row) with ``row_names``, the class names, beside its rows."""
    from torchvision.utils import make_grid, save_image

    images = images.detach().cpu().float()
    scale = -(-MIN_CELL // min(images.shape[-2:]))
    if scale > 1:
        images = torch.nn.functional.interpolate(images, scale_factor=scale, mode="nearest")
    if row_names is None:
        save_image(images, str(path), nrow=8, normalize=True, value_range=(-1, 1))
        return
    grid = make_grid(images, nrow=8, normalize=True, value_range=(-1, 1), pad_value=1.0).permute(1, 2, 0).numpy()
    rows = -(-images.shape[0] // 8)
    dpi = 100
    label_width = 1.6  # inches for the class names
    fig = plt.figure(figsize=(grid.shape[1] / dpi + label_width, grid.shape[0] / dpi), dpi=dpi)
    ax = fig.add_axes(
        (label_width / (grid.shape[1] / dpi + label_width), 0, 1 - label_width / (grid.shape[1] / dpi + label_width), 1)
    )
    ax.imshow(grid, interpolation="nearest")
    cell = grid.shape[0] / rows
    ax.set_yticks(
        [cell * (r + 0.5) for r in range(rows)], [row_names[r % len(row_names)] for r in range(rows)], fontsize=9
    )
    ax.set_xticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


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
    # Only panels with something to show (no penalty panels for a recipe without one), three to a row.
    panels = [(title, lines) for title, lines in panels if any(v is not None for _, k in lines for v in series(k))]
    columns = min(3, max(len(panels), 1))
    rows = max(-(-len(panels) // columns), 1)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, lines) in zip(axes.flat, panels):
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

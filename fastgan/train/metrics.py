"""The 2-D mode-collapse protocol of VEEGAN and PacGAN on generated samples."""

from __future__ import annotations

import torch

from .data import Modes


def mode_metrics(samples: torch.Tensor, modes: Modes) -> dict:
    """Modes captured, high-quality fraction and reverse KL of (N, 2) ``samples`` against a mixture's ``modes``.

    A sample is high quality when it lies within 3 standard deviations of its nearest mode centre; a mode is
    captured when at least one high-quality sample is nearest to it; the reverse KL is
    KL(distribution of the high-quality samples over the modes || uniform), None when there are none.
    """
    samples = samples.detach().float().cpu()
    distances = torch.cdist(samples, modes.centers)
    nearest_distance, nearest = distances.min(dim=1)
    good = nearest_distance < 3 * modes.std
    counts = torch.bincount(nearest[good], minlength=len(modes.centers)).double()
    total = counts.sum().item()
    reverse_kl = None
    if total > 0:
        p = counts[counts > 0] / total
        reverse_kl = float((p * (p * len(modes.centers)).log()).sum())
    return {
        "modes": int((counts > 0).sum()),
        "high_quality": good.float().mean().item(),
        "reverse_kl": reverse_kl,
        "total_modes": len(modes.centers),
    }

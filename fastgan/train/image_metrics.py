"""FID and KID of generated images, with torchmetrics, on Inception-v3 pool features (torch-fidelity's
``inception-v3-compat`` network, the weights FID is defined with) or on a feature network you give.

The real images' features are computed once; each evaluation computes the generated images' features once and
gives them to both metrics. KID's random subsets are drawn from a fixed seed apart from the training generator,
so evaluating never changes what is trained.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch
from torch import nn

INCEPTION_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"  # torch-fidelity's file, what --fid-weights takes
KID_SEED = 20240602
CHUNK = 256  # images per feature pass


def _torchmetrics():
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError as exc:
        raise ValueError("--fid needs torchmetrics and torch-fidelity: pip install 'fastgan[metrics]'") from exc
    return FrechetInceptionDistance, KernelInceptionDistance, NoTrainInceptionV3


def inception(weights: str | None = None) -> nn.Module:
    """The Inception-v3 feature network of FID (2048 pool features of uint8 (B, 3, H, W) images), its weights
    read from ``weights`` or downloaded (to torch's hub cache) when None. ``ValueError`` naming
    ``--fid-weights`` when they cannot be had."""
    *_, NoTrainInceptionV3 = _torchmetrics()
    if weights is not None and not Path(weights).is_file():
        raise ValueError(f"--fid-weights {weights}: no such file (torch-fidelity's {INCEPTION_WEIGHTS})")
    try:
        # The hub's download progress is not shown: a failed download must leave one line, the error below.
        with contextlib.redirect_stderr(io.StringIO()):
            return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                      feature_extractor_weights_path=weights)
    except Exception as exc:  # noqa: BLE001 - a failed download or a wrong file: one clear line
        if weights is not None:
            raise ValueError(f"--fid-weights {weights} is not torch-fidelity's Inception-v3 weights "
                             f"({type(exc).__name__})") from exc
        raise ValueError(f"--fid: the Inception-v3 weights could not be downloaded ({type(exc).__name__}; no "
                         f"network?); pass --fid-weights PATH to a copy of {INCEPTION_WEIGHTS}") from exc


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """(B, 1 or 3, H, W) images in [-1, 1] as the uint8 (B, 3, H, W) images the Inception network takes."""
    pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


class _Given(nn.Module):
    """Features computed beforehand, passed through: torchmetrics' "custom feature network"."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class ImageMetrics:
    """FID and KID of generated images against a fixed set of real ones.

    Args:
        features: maps uint8 (B, 3, H, W) images to (B, F) features (:func:`inception`, or a stand-in).
        real: (N, C, H, W) real images in [-1, 1], N >= 2.
    """

    def __init__(self, features: nn.Module, real: torch.Tensor):
        fid_cls, kid_cls, _ = _torchmetrics()
        if real.shape[0] < 2:
            raise ValueError(f"--fid needs at least 2 images, got {real.shape[0]}")
        self.features, self.n = features.eval(), real.shape[0]
        self.device = real.device
        real_features = self._features(real)
        given = _Given(real_features.shape[1])
        self.fid = fid_cls(feature=given, reset_real_features=False).to(self.device)
        with warnings.catch_warnings():  # that KID keeps every feature: N x F numbers, by design
            warnings.simplefilter("ignore", UserWarning)
            self.kid = kid_cls(feature=given, subsets=100, subset_size=min(1000, self.n),
                               reset_real_features=False).to(self.device)
        self.fid.update(real_features, real=True)
        self.kid.update(real_features, real=True)

    @torch.no_grad()
    def _features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, F) float64 features of (N, C, H, W) images in [-1, 1] (of (N, F) features themselves where the
        feature network takes features: the tests' closed-form check)."""
        chunks = [to_uint8_rgb(c) if c.dim() == 4 else c for c in images.split(CHUNK)]
        return torch.cat([self.features(c).flatten(1).double() for c in chunks])

    def __call__(self, fake: torch.Tensor) -> dict[str, float]:
        """``fid``, ``kid`` and ``kid_std`` of (M, C, H, W) generated images in [-1, 1] (M >= the KID subset
        size, min(1000, N))."""
        fake_features = self._features(fake.to(self.device))
        self.fid.reset()  # the real images' statistics are kept
        self.kid.reset()
        self.fid.update(fake_features, real=False)
        self.kid.update(fake_features, real=False)
        with torch.random.fork_rng(devices=[]):  # KID's subsets: a fixed draw, the training RNG untouched
            torch.manual_seed(KID_SEED)
            kid, kid_std = self.kid.compute()
        return {"fid": float(self.fid.compute()), "kid": float(kid), "kid_std": float(kid_std)}

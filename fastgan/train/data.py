"""Training data, all offline: the 2-D mode-collapse benchmarks and image sets from local files.

Every source is an endless, resumable stream of batches: ``next_batch()`` (samples and their class labels, None
for the 2-D sets) and ``state_dict()`` / ``load_state_dict()``, so that a resumed run sees exactly the batches
an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..distributed import Shard

TOY_SETS = ("ring", "grid", "swissroll")
IMAGE_SETS = ("mnist", "fashion-mnist", "folder")


class DataError(ValueError):
    """A data set that cannot be read: a file that is not an image, a folder without classes."""


@dataclass(frozen=True)
class Modes:
    """Centres of a Gaussian mixture with a common standard deviation."""

    centers: torch.Tensor  # (K, 2)
    std: float


def ring_modes(count: int = 8, radius: float = 1.0, std: float = 0.01) -> Modes:
    """8 Gaussians evenly on the unit circle, std 0.01 (VEEGAN / PacGAN)."""
    angles = torch.arange(count, dtype=torch.float64) * (2 * math.pi / count)
    return Modes(torch.stack([radius * angles.cos(), radius * angles.sin()], dim=1).float(), std)


def grid_modes(std: float = 0.05) -> Modes:
    """25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05 (VEEGAN / PacGAN)."""
    ticks = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    xs, ys = torch.meshgrid(ticks, ticks, indexing="ij")
    return Modes(torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), std)


class ToyStream:
    """Endless i.i.d. batches from a 2-D distribution, drawn from a private generator (saved with the run).

    ``batch_size`` is the global batch: with a ``shard`` of several ranks each one draws it whole and keeps its
    rows, so the data of step t do not depend on the number of processes.
    """

    def __init__(self, name: str, batch_size: int, seed: int, device: torch.device, shard: Shard = Shard()):
        if name not in TOY_SETS:
            raise ValueError(f"unknown toy data set {name!r}; choose from {TOY_SETS}")
        self.name, self.batch_size, self.device, self.shard = name, batch_size, device, shard
        self.modes = {"ring": ring_modes, "grid": grid_modes}.get(name, lambda: None)()
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (2,)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` points (n, 2) in float32 on the CPU."""
        if self.modes is not None:
            which = torch.randint(len(self.modes.centers), (n,), generator=generator)
            return self.modes.centers[which] + self.modes.std * torch.randn(n, 2, generator=generator)
        # Swiss roll: t in [1.5 pi, 4.5 pi], scaled to about [-1, 1]^2 with a little noise.
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
        points = torch.stack([t * t.cos(), t * t.sin()], dim=1) / (4.5 * math.pi)
        return points + 0.01 * torch.randn(n, 2, generator=generator)

    classes = None  # unlabelled

    def next_batch(self) -> tuple[torch.Tensor, None]:
        """This rank's rows of the next batch (B, 2), and no labels."""
        return self.shard.rows(self.sample(self.batch_size, self.generator)).to(self.device), None

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (any shape) as float32 in [-1, 1]: x / 127.5 - 1."""
    return images.float().div_(127.5).sub_(1.0)


def _image_transform(image_size: int, channels: int):
    from torchvision import transforms

    steps = [transforms.Resize(image_size), transforms.CenterCrop(image_size)]
    if channels == 1:
        steps.append(transforms.Grayscale(1))
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize([0.5] * channels, [0.5] * channels)])


def _open_image(path: str):
    """ImageFolder's loader, naming the file it cannot read (``DataError``) instead of PIL's traceback."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            return _as_8_bit(Image.open(f), path).convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise DataError(f"cannot read the image {path} ({type(exc).__name__}: {exc}); remove or replace it") from None


def _as_8_bit(image, path: str):
    """A 16-bit grayscale image (PIL modes I;16* and I, which ``convert`` clips to 255) scaled to 8 bits with its
    range (x / 257); a floating-point image refused by name (its range is unknown)."""
    import numpy as np
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        pixels = np.asarray(image, dtype=np.float64)
        if pixels.min() < 0 or pixels.max() > 65535:
            raise DataError(f"the image {path} holds 32-bit integers outside 0..65535; convert it to 8 or 16 bits")
        return Image.fromarray(np.rint(pixels / 257).astype(np.uint8))
    if image.mode == "F":
        raise DataError(
            f"the image {path} holds floating-point pixels, whose range is unknown; convert it to 8 or 16 bits"
        )
    return image


def load_image_dataset(
    name: str, root: str | Path | None, image_size: int, download: bool = False, split: str = "train"
):
    """A dataset of images scaled to [-1, 1], with class labels: MNIST (from local files, or fetched with
    ``download``), Fashion-MNIST (:mod:`fastgan.train.idx_images`; ``split`` "train" or "test"), or any
    ImageFolder tree (one class per subfolder)."""
    from torchvision import datasets

    if root is not None and Path(root).is_file():
        raise FileNotFoundError(f"--data-root {root} is a file: give the folder that holds the {name} data")
    if name == "fashion-mnist":
        from .idx_images import load_fashion_mnist

        return load_fashion_mnist(root, split, image_size, download)
    root = Path(root)
    if name == "mnist":
        try:
            return datasets.MNIST(str(root), train=True, download=download, transform=_image_transform(image_size, 1))
        except (RuntimeError, OSError) as exc:
            if download:
                raise FileNotFoundError(
                    f"could not download MNIST into {root} ({exc}); without network access, "
                    f"put the four uncompressed IDX files in {root / 'MNIST' / 'raw'}"
                ) from exc
            raise FileNotFoundError(
                f"MNIST not found under {root}: pass --download to fetch it, or put the four uncompressed files "
                "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
                f"in {root / 'MNIST' / 'raw'}"
            ) from exc
    if name == "folder":
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist: give --data-root DIR with DIR/class/*.png")
        try:
            return datasets.ImageFolder(str(root), transform=_image_transform(image_size, 3), loader=_open_image)
        except FileNotFoundError as exc:  # no class folders, or no images in them
            raise DataError(f"image folder {root}: {exc}") from None
    raise ValueError(f"unknown image data set {name!r}; choose from {IMAGE_SETS}")


def _named_errors(loader):
    """``loader``'s batches, a ``DataError`` raised in a worker re-raised with its own message (a worker's
    error arrives as a copy whose message starts with the worker's traceback)."""
    try:
        yield from loader
    except DataError as exc:
        raise DataError(str(exc).strip().splitlines()[-1].split("DataError: ", 1)[-1]) from None


# The whole data set is decoded once and kept as one tensor on the device when it takes at most this many
# bytes there (MNIST at 28x28 is 188 MB); larger sets are read batch by batch by DataLoader workers.
RESIDENT_BYTES = 2 * 2**30


class ImageStream:
    """Endless shuffled batches of a map-style image dataset, epoch after epoch, without dropping state.

    Each epoch's order is a permutation drawn from (seed, epoch) alone, and the position in it is saved, so a
    resumed run continues with the very next batch. The last incomplete batch of an epoch is dropped. A set
    that fits in ``RESIDENT_BYTES`` is decoded once into one tensor on the device and batches are gathered
    there; a larger one is read by DataLoader workers into pinned memory and copied without blocking. Either
    way the training loop never runs a per-image Python loop. ``batch_size`` is the global batch; with a
    ``shard`` of several ranks each one reads its rows of it.
    """

    def __init__(
        self, dataset, batch_size: int, seed: int, device: torch.device, workers: int = 2, shard: Shard = Shard()
    ):
        if len(dataset) < batch_size:
            raise ValueError(f"the data set has {len(dataset)} images, fewer than the batch size {batch_size}")
        self.dataset, self.batch_size, self.seed, self.device = dataset, batch_size, seed, device
        self.shard = shard
        self.workers = workers
        self.epoch, self.position = 0, 0
        first = dataset[0][0]
        self.sample_shape = tuple(first.shape)
        self.class_names = [str(c) for c in dataset.classes] if getattr(dataset, "classes", None) else None
        self.classes = len(self.class_names) if self.class_names else None
        # A set held as uint8 tensors (idx_images.TensorImages) stays uint8 on the device (4x fewer bytes than
        # decoded floats), normalised per batch.
        held = getattr(dataset, "images", None)
        self.uint8 = torch.is_tensor(held) and held.dtype == torch.uint8 and held.numel() <= RESIDENT_BYTES
        if self.uint8:
            self.images, self.labels = dataset.images.to(device), dataset.labels.to(device)
        else:
            resident = len(dataset) * first.numel() * first.element_size() <= RESIDENT_BYTES
            self.images, self.labels = self._decode_all() if resident else (None, None)
        self._start_epoch()

    def _decode_all(self) -> tuple[torch.Tensor, torch.Tensor]:
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=256, num_workers=self.workers)
        images, labels = zip(*_named_errors(loader))
        return torch.cat(images).to(self.device), torch.cat(labels).to(self.device)

    def _permutation(self) -> torch.Tensor:
        return torch.randperm(
            len(self.dataset), generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        )

    def _start_epoch(self) -> None:
        self._order = self._permutation()
        self._batches = None
        if self.images is None:
            # Workers read this epoch's remaining batches, in order, from the current position on.
            end = len(self.dataset) - (len(self.dataset) - self.position) % self.batch_size
            batches = [
                self.shard.rows(batch).tolist() for batch in self._order[self.position : end].split(self.batch_size)
            ]
            loader = torch.utils.data.DataLoader(
                self.dataset, batch_sampler=batches, num_workers=self.workers, pin_memory=self.device.type == "cuda"
            )
            self._batches = _named_errors(loader)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's rows of the next batch: images (B, C, H, W) and their class labels (B,) (int64)."""
        if self.position + self.batch_size > len(self.dataset):
            self.epoch, self.position = self.epoch + 1, 0
            self._start_epoch()
        if self.images is not None:
            indices = self.shard.rows(self._order[self.position : self.position + self.batch_size])
            indices = indices.to(self.images.device)
            batch, labels = self.images.index_select(0, indices), self.labels.index_select(0, indices)
            if self.uint8:
                batch = to_unit_range(batch)
        else:
            batch, labels = next(self._batches)
            batch, labels = batch.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        self.position += self.batch_size
        return batch, labels

    def first(self, n: int) -> torch.Tensor:
        """The data set's first ``n`` images (n, C, H, W) on the device, as batches have them (for pictures)."""
        n = min(n, len(self.dataset))
        if self.images is None:
            return torch.stack([self.dataset[i][0] for i in range(n)]).to(self.device)
        return to_unit_range(self.images[:n]) if self.uint8 else self.images[:n]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._start_epoch()

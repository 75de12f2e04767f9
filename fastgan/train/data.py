"""Training data, all offline: the 2-D mode-collapse benchmarks and torchvision image datasets from local files.

Every source is an endless, resumable stream of batches: ``next_batch()`` and ``state_dict()`` /
``load_state_dict()``, so that a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

TOY_SETS = ("ring", "grid", "swissroll")
IMAGE_SETS = ("mnist", "folder")


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
    """Endless i.i.d. batches from a 2-D distribution, drawn from a private generator (saved with the run)."""

    def __init__(self, name: str, batch_size: int, seed: int, device: torch.device):
        if name not in TOY_SETS:
            raise ValueError(f"unknown toy data set {name!r}; choose from {TOY_SETS}")
        self.name, self.batch_size, self.device = name, batch_size, device
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

    def next_batch(self) -> torch.Tensor:
        return self.sample(self.batch_size, self.generator).to(self.device)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _image_transform(image_size: int, channels: int):
    from torchvision import transforms

    steps = [transforms.Resize(image_size), transforms.CenterCrop(image_size)]
    if channels == 1:
        steps.append(transforms.Grayscale(1))
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize([0.5] * channels, [0.5] * channels)])


def load_image_dataset(name: str, root: str | Path, image_size: int):
    """A torchvision dataset of images scaled to [-1, 1]: MNIST from local files, or any ImageFolder tree."""
    from torchvision import datasets

    root = Path(root)
    if name == "mnist":
        try:
            return datasets.MNIST(str(root), train=True, download=False, transform=_image_transform(image_size, 1))
        except RuntimeError as exc:
            raise FileNotFoundError(
                f"MNIST not found under {root}: put the four uncompressed files train-images-idx3-ubyte, "
                f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte in {root / 'MNIST' / 'raw'}"
            ) from exc
    if name == "folder":
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist: give --data-root DIR with DIR/class/*.png")
        return datasets.ImageFolder(str(root), transform=_image_transform(image_size, 3))
    raise ValueError(f"unknown image data set {name!r}; choose from {IMAGE_SETS}")


class ImageStream:
    """Endless shuffled batches of a map-style image dataset, epoch after epoch, without dropping state.

    Each epoch's order is a permutation drawn from (seed, epoch) alone, and the position in it is saved, so a
    resumed run continues with the very next batch. The last incomplete batch of an epoch is dropped.
    """

    def __init__(self, dataset, batch_size: int, seed: int, device: torch.device):
        if len(dataset) < batch_size:
            raise ValueError(f"the data set has {len(dataset)} images, fewer than the batch size {batch_size}")
        self.dataset, self.batch_size, self.seed, self.device = dataset, batch_size, seed, device
        self.epoch, self.position = 0, 0
        self._order = self._permutation()

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.dataset[0][0].shape)

    def _permutation(self) -> torch.Tensor:
        return torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch))

    def next_batch(self) -> torch.Tensor:
        if self.position + self.batch_size > len(self.dataset):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._permutation()
        indices = self._order[self.position:self.position + self.batch_size].tolist()
        self.position += self.batch_size
        return torch.stack([self.dataset[i][0] for i in indices]).to(self.device)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._permutation()

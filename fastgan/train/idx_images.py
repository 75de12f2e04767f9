"""Image sets in the IDX format (MNIST's), read whole into uint8 tensors: Fashion-MNIST from local files.

Fashion-MNIST (Xiao et al., 2017: 60,000 training and 10,000 test images of 28x28, 10 classes) is found in
either layout users have: the original four ``.gz`` files in one folder (Debian's ``dataset-fashion-mnist``
installs them in ``/usr/share/datasets/fashion-mnist``), or torchvision's ``ROOT/FashionMNIST/raw`` (``.gz`` or
uncompressed). ``download=True`` fetches it through torchvision into the second layout (users' machines).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from .data import DataError, to_unit_range

DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")  # dataset-fashion-mnist's folder
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_UBYTE = 0x08  # the IDX type code of unsigned bytes


def read_idx(path: str | Path, dims: int) -> torch.Tensor:
    """The uint8 array of an IDX file (gzip-compressed or not) with ``dims`` dimensions; ``DataError`` naming the
    file when it is truncated, corrupt or of another shape."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc}); replace the file") from None
    if len(raw) < 4 + 4 * dims or raw[:2] != b"\0\0" or raw[2] != _UBYTE or raw[3] != dims:
        raise DataError(f"{path} is not an IDX file of unsigned bytes with {dims} dimensions; replace the file")
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", dims, 4))
    body = raw[4 + 4 * dims :]
    if len(body) != int(np.prod(shape)):
        raise DataError(
            f"{path} is truncated or corrupt: its header says {shape} ({int(np.prod(shape))} bytes), "
            f"it holds {len(body)}; replace the file"
        )
    return torch.from_numpy(np.frombuffer(body, np.uint8).reshape(shape).copy())


def _find(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "FashionMNIST" / "raw"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


class TensorImages:
    """A whole image set as tensors: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,), ``classes`` names.

    Indexing gives (image in [-1, 1] float32 (C, H, W), label) as torchvision's datasets do; training reads
    ``images`` directly (:class:`fastgan.train.data.ImageStream` keeps them on the device as uint8).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...]):
        self.images, self.labels, self.classes = images, labels, list(classes)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return to_unit_range(self.images[i]), int(self.labels[i])


def load_fashion_mnist(
    root: str | Path | None, split: str = "train", image_size: int = 28, download: bool = False
) -> TensorImages:
    """Fashion-MNIST's ``split`` ("train" or "test") from ``root`` (default: Debian's folder), resized to
    ``image_size`` (bilinear, antialiased) when it is not 28. ``FileNotFoundError`` naming ``--data-root`` and
    ``--download`` when the files are not there; ``DataError`` naming a corrupt file."""
    root = Path(root) if root is not None else DEBIAN_ROOT
    stems = SPLITS[split]
    paths = [_find(root, stem) for stem in stems]
    if None in paths and download:
        from torchvision import datasets

        try:
            datasets.FashionMNIST(str(root), train=split == "train", download=True)
        except (RuntimeError, OSError) as exc:
            raise FileNotFoundError(
                f"could not download Fashion-MNIST into {root} ({type(exc).__name__}); "
                "without network access: apt-get install dataset-fashion-mnist"
            ) from None
        paths = [_find(root, stem) for stem in stems]
    if None in paths:
        missing = ", ".join(stem + ".gz" for stem, p in zip(stems, paths) if p is None)
        raise FileNotFoundError(
            f"Fashion-MNIST not found under --data-root {root} ({missing}): apt-get install "
            "dataset-fashion-mnist (then no --data-root is needed), put the files there, or "
            "pass --download"
        )
    images, labels = read_idx(paths[0], 3), read_idx(paths[1], 1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{paths[0]} holds {images.shape[0]} images but {paths[1]} {labels.shape[0]} labels")
    if labels.numel() and int(labels.max()) >= len(FASHION_CLASSES):
        raise DataError(f"{paths[1]} has a label {int(labels.max())} outside 0..9; replace the file")
    images = images.unsqueeze(1)
    if image_size != images.shape[-1]:
        resized = torch.nn.functional.interpolate(
            images.float(), size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
        )
        images = resized.round_().clamp_(0, 255).to(torch.uint8)
    return TensorImages(images, labels.long(), FASHION_CLASSES)

"""Test set-up: without a GPU the Triton kernels run under the interpreter on CPU tensors.

TRITON_INTERPRET must be set before the kernels are defined; fastgan imports them lazily, so setting it here,
before any test runs, is early enough.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import fastgan

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(params=["torch", "triton"])
def backend(request):
    """Run the test once per backend (the Triton one interpreted on CPU when no GPU is present)."""
    with fastgan.use_backend(request.param):
        yield request.param


@pytest.fixture
def device():
    return DEVICE


@pytest.fixture
def small_grid(monkeypatch):
    """Make the kernels' tiling aim for a few programs instead of enough to fill a GPU, so that the tests'
    small tensors take every tiling class large ones take."""
    from helpers import SMALL_GRID

    from fastgan.kernels import _tiles

    monkeypatch.setattr(_tiles, "TARGET_PROGRAMS", SMALL_GRID)


@pytest.fixture
def mnist_root(tmp_path):
    """A folder holding a tiny MNIST (40 training images) in torchvision's layout."""
    from helpers import write_mnist

    return write_mnist(tmp_path / "mnist")


@pytest.fixture
def fashion_root(tmp_path):
    """A folder holding a tiny Fashion-MNIST (40 training, 24 test images) as Debian's package lays it out."""
    from helpers import write_fashion_mnist

    return write_fashion_mnist(tmp_path / "fashion")

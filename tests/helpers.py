"""Shared test helpers: float64 oracles compared element by element, with error bounds from the dtype.

After FlagGems' accuracy utilities: the reference is computed in float64 on the same (rounded) inputs, and the
tolerance is what the dtype's rounding and fp32 arithmetic allow, element by element. Reduced outputs
(norms, sums, means) also allow for the reduction's length. No bound grows with the tensor's size or its
largest value: a zero, halved or 1%-scaled result fails.
"""

import gzip
import math
import os
import struct
from pathlib import Path

import pytest
import torch

from fastgan.backend import requested_backend

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# Largest relative error of rounding a value to the dtype (half an ulp) ...
ROUNDING = {torch.float64: 2.0**-53, torch.float32: 2.0**-24, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
# ... and the absolute spacing of its subnormals (where relative rounding no longer holds).
SUBNORMAL = {torch.float64: 2.0**-1074, torch.float32: 2.0**-149, torch.float16: 2.0**-24, torch.bfloat16: 2.0**-133}
# One fp32 operation (the kernels and the eager path compute in fp32 for fp32 and narrower inputs).
FP32 = 2.0**-24


def rounding(dtype: torch.dtype) -> float:
    """Relative error of rounding to ``dtype`` on the backend in use: a whole ulp for bfloat16 on the Triton
    interpreter, which converts fp32 to bfloat16 by truncation where GPUs and PyTorch round to nearest."""
    if dtype == torch.bfloat16 and INTERPRETED and requested_backend() == "triton":
        return 2 * ROUNDING[dtype]
    return ROUNDING[dtype]


def compute_unit(dtype: torch.dtype) -> float:
    """Relative error of one arithmetic operation in the precision ``dtype`` is computed in."""
    return ROUNDING[torch.float64] if dtype == torch.float64 else FP32


def reduction_rtol(n: int, dtype: torch.dtype = torch.float32) -> float:
    """Relative error of a sum of ``n`` same-signed terms accumulated in ``dtype``'s compute precision."""
    return compute_unit(dtype) * 2 * (4 + math.sqrt(n))


def assert_elementwise(actual, expected64, dtype, ops: int = 3, extra=None):
    """Every element of ``actual`` within its error bound of the float64 ``expected64``.

    Bound per element: rounding to ``dtype`` plus ``ops`` operations in the compute precision, both relative
    to the expected value, plus ``extra`` (a tensor or number: error carried in from the inputs, e.g. a
    cancellation) plus one subnormal step. NaN must match NaN.
    """
    assert actual.dtype == dtype, f"dtype {actual.dtype}, expected {dtype}"
    assert actual.shape == expected64.shape, f"shape {tuple(actual.shape)}, expected {tuple(expected64.shape)}"
    a, e = actual.detach().double().cpu(), expected64.detach().double().cpu()
    nan = e.isnan()
    assert torch.equal(a.isnan(), nan), "NaN positions differ"
    bound = (rounding(dtype) + ops * compute_unit(dtype)) * e.abs() + SUBNORMAL[dtype]
    if extra is not None:
        bound = bound + (extra.detach().double().cpu() if torch.is_tensor(extra) else extra)
    err = torch.where(nan, 0.0, (a - e).abs())
    bad = err > bound
    if bad.any():
        i = int(torch.argmax(torch.where(bad, err / bound, 0.0)))
        pytest.fail(
            f"{int(bad.sum())} of {e.numel()} elements out of bounds; worst at flat index {i}: "
            f"got {a.flatten()[i].item()!r}, expected {e.flatten()[i].item()!r}, bound "
            f"{bound.flatten()[i].item():.3g}"
        )


def make(shape, dtype, device, layout="contiguous", seed=0):
    """A random normal tensor of ``shape``.

    ``layout``: contiguous, channels_last, hw_swapped (dense samples with the last two dimensions swapped in
    memory), batch_sliced (``x[::2]``) or strided (a view with non-dense samples).
    """
    gen = torch.Generator().manual_seed(seed)
    if layout == "batch_sliced":
        # Every other sample: rows are dense but spaced 2 * D apart (used without a copy).
        full = torch.randn(2 * shape[0], *shape[1:], generator=gen, dtype=torch.float64)
        return full.to(device=device, dtype=dtype)[::2]
    if layout == "strided":
        # Every other element of the last dim: samples are not dense, so the ops must copy or stride.
        wide = torch.randn(*shape[:-1], 2 * shape[-1], generator=gen, dtype=torch.float64)
        return wide.to(device=device, dtype=dtype)[..., ::2]
    x = torch.randn(*shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    if layout == "hw_swapped":
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    return x


# Odd shapes (1, primes, 2^k + 17), the reference's MNIST batch, more than 65535 samples, images in NCHW,
# channels_last, strided and batch-sliced views, samples above 65536 elements. With the tests' small grid
# target (see `small_grid`) they reach every tiling class of the row kernels: see test_tiling.py.
SHAPES = [
    ((1, 1), "contiguous"),
    ((3, 7), "contiguous"),
    ((17, 1041), "contiguous"),
    ((64, 784), "contiguous"),
    ((3, 4113), "contiguous"),
    ((16, 4113), "contiguous"),
    ((70000, 2), "contiguous"),
    ((4, 3, 64, 64), "contiguous"),
    ((4, 3, 64, 64), "channels_last"),
    ((5, 3, 13, 17), "strided"),
    ((6, 2, 9, 11), "batch_sliced"),
    ((2, 3, 150, 150), "contiguous"),
]
SHAPE_IDS = [f"{'x'.join(map(str, s))}-{lay}" for s, lay in SHAPES]
# Programs a launch aims for in the accuracy tests (the `small_grid` fixture of conftest.py): small, so that
# small tensors take the tilings large ones take.
SMALL_GRID = 8


def _write_idx(path: Path, array: torch.Tensor, magic: int) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape))
        f.write(array.numpy().tobytes())


def write_mnist(root: Path, train: int = 40, test: int = 8) -> Path:
    """MNIST's four IDX files under ``root/MNIST/raw``: random 28x28 digits labelled ``index % 10`` (every class
    present). Returns ``root``."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", train), ("t10k", test)):
        images = torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8)
        _write_idx(raw / f"{split}-images-idx3-ubyte", images, 0x803)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", torch.arange(n, dtype=torch.uint8) % 10, 0x801)
    return Path(root)


def write_fashion_mnist(root: Path, train: int = 40, test: int = 24, layout: str = "debian") -> Path:
    """Fashion-MNIST's four IDX files, random 28x28 images labelled ``index % 10``: gzip-compressed in ``root``
    itself (``layout="debian"``, as dataset-fashion-mnist installs them) or uncompressed in
    ``root/FashionMNIST/raw`` (``"torchvision"``). Returns ``root``."""
    folder = Path(root) if layout == "debian" else Path(root) / "FashionMNIST" / "raw"
    folder.mkdir(parents=True)
    gen = torch.Generator().manual_seed(1)
    for split, n in (("train", train), ("t10k", test)):
        images = torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8)
        for name, array, magic in (
            (f"{split}-images-idx3-ubyte", images, 0x803),
            (f"{split}-labels-idx1-ubyte", torch.arange(n, dtype=torch.uint8) % 10, 0x801),
        ):
            _write_idx(folder / name, array, magic)
            if layout == "debian":
                path = folder / name
                path.with_name(name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
                path.unlink()
    return Path(root)


class TinyInception(torch.nn.Module):
    """A stand-in of the FID network with its interface, (B, 3, 299, 299) in [-1, 1) -> (B, 6): the means of the
    first channel's four quadrants, its spread and its mean square."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != 299 or x.shape[3] != 299:
            raise ValueError("expects 299 x 299 images")
        first = x[:, :1]
        quadrants = torch.nn.functional.adaptive_avg_pool2d(first, 2).flatten(1)
        return torch.cat([quadrants, first.std(dim=(2, 3)), first.square().mean(dim=(2, 3))], dim=1)


def write_tiny_inception(path: Path) -> Path:
    """:class:`TinyInception` scripted and saved as a TorchScript file at ``path``; returns ``path``."""
    import warnings

    with warnings.catch_warnings():  # torch.jit.script's deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(TinyInception()).save(str(path))
    return path


def launched_kernels() -> list:
    """Every kernel the launchers launch (``fastgan.kernels.launch.DirectKernel`` objects), imported on call: the
    kernels must be defined after ``TRITON_INTERPRET`` is set."""
    from fastgan.kernels import clipping, interpolation, losses, norm_penalty

    return [
        clipping.clipping_kernel,
        interpolation.interpolation_fwd_kernel,
        interpolation.interpolation_bwd_kernel,
        losses.losses_fwd_kernel,
        losses.losses_finish_kernel,
        losses.losses_bwd_kernel,
        norm_penalty.penalty_fwd_kernel,
        norm_penalty.penalty_finish_kernel,
        norm_penalty.penalty_bwd_kernel,
    ]


def stand_in_capture(monkeypatch) -> list:
    """Graph mode on a CPU: the warm-up runs on the current stream and a "graph" runs the captured body on the
    static inputs at each replay, as a replay does (the GPU tests capture for real). Returns the list that
    each replay appends to."""
    import fastgan.steps.graph as graph_module

    replays = []

    class StandInGraph:
        def __init__(self, body, outputs):
            self.body, self.outputs = body, outputs

        def replay(self):
            replays.append(1)
            for k, v in self.body().items():
                self.outputs[k].copy_(v)

    def capture(body, warmed):
        outputs = {k: torch.empty_like(v) for k, v in warmed.items()}
        return StandInGraph(body, outputs), outputs

    monkeypatch.setattr(graph_module, "on_side_stream", lambda fn: fn())
    monkeypatch.setattr(graph_module, "capture", capture)
    return replays

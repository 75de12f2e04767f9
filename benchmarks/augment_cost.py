"""``python -m benchmarks.augment_cost``: differentiable augmentation (DiffAugment's color, translation, cutout),
forward and backward, on the image sizes GANs train at (64, 128 and 256 px, batch 64, RGB).

Providers, in the same run: the reference (DiffAugment's code shape, ``fastgan.reference.diff_augment``), the
reference under ``torch.compile`` (what a user would try first to speed it up), and ``fastgan.augment`` (the
fused Triton kernels on a GPU, the eager PyTorch path elsewhere). Each call draws nothing (fixed parameters) and
is timed forward plus backward, with GB/s over the bytes the op must move (read x, write the output; read the
gradient, write the input's). Prints a table and writes JSON (``--out``) with the device's name.
"""

from __future__ import annotations

import argparse
import json
import warnings
from functools import partial

import torch

import fastgan
from fastgan import reference

from .timing import median_ms

SIZES = (64, 128, 256)
BATCH = 64
POLICY = "color,translation,cutout"


def _reference(augment, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = augment(x, params, POLICY)
    return out


def _forward_backward(augment, x: torch.Tensor, grad: torch.Tensor) -> None:
    x.grad = None
    augment(x).backward(grad)


def measure(device: torch.device, dtype: torch.dtype, sizes: tuple[int, ...]) -> list[dict]:
    rows = []
    compiled = torch.compile(reference.diff_augment)
    for size in sizes:
        torch.manual_seed(0)
        x = torch.randn(BATCH, 3, size, size, device=device, dtype=dtype, requires_grad=True)
        grad = torch.randn_like(x)
        params = fastgan.augment_params(x)
        moved = 4 * x.numel() * x.element_size()
        providers = {
            "reference": partial(_reference, reference.diff_augment, params),
            "reference compiled": partial(_reference, compiled, params),
            "fastgan": partial(fastgan.augment, policy=POLICY, params=params),
        }
        base = None
        for name, fn in providers.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ms, timer = median_ms(partial(_forward_backward, fn, x, grad), device)
            base = base or ms
            rows.append(
                dict(size=size, provider=name, dtype=str(dtype)[6:], ms=ms, ratio=base / ms, gbps=moved / ms / 1e6)
            )
            rows[-1]["timer"] = timer
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    rows = [row for name in args.dtypes for row in measure(device, dtypes[name], tuple(args.sizes))]
    print(f"{'px':>4s} {'dtype':8s} {'provider':20s} {'ms':>9s} {'x reference':>12s} {'GB/s':>8s}   ({card})")
    for row in rows:
        print(
            f"{row['size']:4d} {row['dtype']:8s} {row['provider']:20s} {row['ms']:9.3f} {row['ratio']:12.2f} "
            f"{row['gbps']:8.1f}"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": card, "torch": torch.__version__, "batch": BATCH, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

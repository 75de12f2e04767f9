"""``fastgan sample``: N images from a run's generator, as uint8 for any metric tool.

The generator is the run's EMA where it has one, at its lowest-FID checkpoint (``best.pt``) or, with ``last``,
its last checkpoint; the noise is the evaluation noise the run's own FID was computed on (or another seed's), so
``fastgan sample RUN --n N`` gives the very images behind the FID a run of ``--fid N`` reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import checkpoint as checkpoint_io
from .building import build_models
from .config import LIMITS
from .evaluation import EVAL_SEED, evaluation_labels, generate_samples
from .image_metrics import to_uint8
from .settings import Settings

NPZ_KEY = "images"  # the one array of the .npz: uint8 (N, C, H, W)


def _labels(classes: int | None, n: int, labels: list[int] | None) -> torch.Tensor | None:
    if classes is None:
        if labels:
            raise ValueError("--labels: the run is not conditional")
        return None
    if not labels:
        return evaluation_labels(n, classes)
    bad = [y for y in labels if not 0 <= y < classes]
    if bad:
        raise ValueError(f"--labels {bad[0]}: the run's classes are 0..{classes - 1}")
    return torch.tensor(labels).repeat(-(-n // len(labels)))[:n]


def check_output(out: str | Path, n: int) -> Path:
    """``ValueError`` naming ``--out`` or ``--n`` when the images cannot be written there: ``out`` exists (a
    file is never replaced, a folder never added to), or ``n`` < 1."""
    out = Path(out)
    if not 1 <= n <= LIMITS["fid"]:
        raise ValueError(f"--n must be 1 to {LIMITS['fid']}, got {n}")
    if out.exists():
        raise ValueError(f"--out {out} exists; give a new .npz file or folder name")
    if not out.absolute().parent.is_dir():
        raise ValueError(f"--out {out}: the folder {out.absolute().parent} does not exist")
    return out


def sample_run(
    run_dir: str | Path,
    n: int,
    out: str | Path,
    last: bool = False,
    labels: list[int] | None = None,
    seed: int = EVAL_SEED,
    device: str = "cpu",
) -> dict:
    """Write ``n`` images of the run in ``run_dir`` to ``out``: an ``.npz`` holding uint8 (N, C, H, W) under
    ``"images"``, or else a new folder of PNGs ``000000.png``, ... Everything is checked before anything is
    written (``ValueError`` naming the option, ``CheckpointError`` for a folder without a run). Returns where
    the generator came from (``step``, ``fid`` of ``best.pt``, ``ema``)."""
    out = check_output(out, n)
    state = checkpoint_io.load_generator_state(Path(run_dir), last)
    s, classes = Settings.from_options(state["settings"]), state["classes"]
    chosen = _labels(classes, n, labels)
    generator, _ = build_models(s, tuple(state["sample_shape"]), classes)
    if state["ema"] is not None:
        generator.load_state_dict(state["ema"])
    else:
        generator.load_state_dict(state["generator"])
    device = torch.device(device)
    pixels = to_uint8(generate_samples(generator.to(device), s, n, device, chosen, seed)).cpu()
    if out.suffix == ".npz":
        tmp = out.with_name(out.name + ".tmp.npz")
        np.savez(tmp, **{NPZ_KEY: pixels.numpy()})
        tmp.replace(out)
    else:
        from PIL import Image

        out.mkdir()
        for i, image in enumerate(pixels.permute(0, 2, 3, 1).numpy()):
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(out / f"{i:06d}.png")
    return {"step": state["step"], "fid": state.get("fid"), "ema": state["ema"] is not None, "n": n}

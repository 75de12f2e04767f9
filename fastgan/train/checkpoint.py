"""Checkpoints that run no code and lose nothing.

A checkpoint holds only tensors and plain data (dicts, lists, tuples, numbers, strings, None), so it is read
with ``torch.load(weights_only=True)``: a file holding anything else is refused before any of it runs. It is
written to a temporary file, flushed to disk and renamed over the old one, which is kept as
``checkpoint.prev.pt``: a crash never leaves a half-written checkpoint, and a corrupt one still leaves the
previous good one.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from .config import DEFAULTS, RESUME_SAFE

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
BEST = "best.pt"  # the generator at the lowest FID so far
KEYS = ("settings", "step", "generator", "critic", "ema", "opt_g", "opt_d", "data", "history", "rng_cpu", "rng_cuda")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, unsafe, or written with other settings."""


def _write(state: dict, path: Path, previous: Path | None = None) -> None:
    """Write ``state`` to ``path`` through a synced temporary file, the old file renamed to ``previous``."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    if previous is not None and path.exists():
        os.replace(path, previous)
    os.replace(tmp, path)


def save(state: dict, out_dir: Path) -> None:
    """Write ``state`` as ``out_dir/checkpoint.pt`` atomically, keeping the last one as ``checkpoint.prev.pt``."""
    _write(state, out_dir / CHECKPOINT, out_dir / PREVIOUS)


def save_best(state: dict, out_dir: Path) -> None:
    """Write the lowest-FID generator ``state`` (settings, step, fid, generator, ema, sample_shape, classes) as
    ``out_dir/best.pt`` atomically."""
    _write(state, out_dir / BEST)


def load_generator_state(out_dir: Path, last: bool = False) -> dict:
    """What ``fastgan sample`` needs of a run: ``best.pt`` (unless ``last`` or there is none), else the
    checkpoint; ``CheckpointError`` when ``out_dir`` holds neither, or one without the generator's shape."""
    path = out_dir / CHECKPOINT if last or not (out_dir / BEST).exists() else out_dir / BEST
    if not path.exists():
        raise CheckpointError(f"{out_dir} holds no run (no {CHECKPOINT} or {BEST})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unsafe, truncated or corrupt: one line
        raise CheckpointError(f"{path} cannot be read ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "sample_shape" not in state:
        raise CheckpointError(f"{path} was not written by this fastgan (no sample_shape); train the run again")
    return state


def load(out_dir: Path) -> dict:
    """The checkpoint in ``out_dir``; ``CheckpointError`` saying what is wrong when it cannot be used."""
    path = out_dir / CHECKPOINT
    previous = out_dir / PREVIOUS
    keep = (
        f" The previous checkpoint is kept as {previous}: copy it to {path} to resume from it."
        if previous.exists()
        else ""
    )
    if not path.exists():
        raise CheckpointError(f"--resume: there is no checkpoint at {path}." + keep)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {path}: it holds objects other than tensors and plain data, which could run code "
            f"(nothing in it was run). {str(exc).splitlines()[0]}" + keep
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch reports truncation and corruption with several types
        raise CheckpointError(
            f"{path} is truncated or corrupt ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})." + keep
        ) from None
    if not isinstance(state, dict) or any(key not in state for key in KEYS):
        raise CheckpointError(
            f"{path} is not a fastgan checkpoint (it lacks "
            f"{', '.join(k for k in KEYS if not isinstance(state, dict) or k not in state)})." + keep
        )
    return state


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def resume_settings(saved: dict, given: dict, done: int) -> dict:
    """The settings of a resumed run: the checkpoint's (written after ``done`` steps), with the options in
    RESUME_SAFE that were given.

    Raises ``CheckpointError`` naming every other given option whose value differs from the checkpoint's, and
    for a ``steps`` the resumed run could not end as the uninterrupted run would have: fewer than ``done``, or
    another number of steps when the learning rates decay over them. An option added after the checkpoint was
    written takes its default, which is how that run trained (``pack``).
    """
    saved = {**{k: v for k, v in DEFAULTS.items() if k not in saved}, **saved}
    changed = [
        f"{_option(k)} {v!r} (checkpoint: {saved.get(k)!r})"
        for k, v in given.items()
        if k not in RESUME_SAFE and _normalised(v) != _normalised(saved.get(k))
    ]
    if changed:
        raise CheckpointError(
            "--resume: these options differ from the checkpoint's: "
            + ", ".join(changed)
            + ". Only "
            + ", ".join(_option(k) for k in RESUME_SAFE)
            + " may change when resuming; start a new run "
            "(another --out) to change the others."
        )
    steps = given.get("steps", saved["steps"])
    if steps < done:
        raise CheckpointError(f"--resume: the checkpoint is at step {done}; --steps {steps} would go back")
    if steps != saved["steps"] and saved.get("lr_decay"):
        raise CheckpointError(
            f"--resume: --steps cannot change from {saved['steps']} here: the learning rates decay to 0 over "
            f"--steps (--lr-decay), so the run would not end as one of {steps} steps; resume with --steps "
            f"{saved['steps']}, or start a new run"
        )
    return {**saved, **{k: v for k, v in given.items() if k in RESUME_SAFE}}


def _normalised(value):
    return tuple(value) if isinstance(value, list) else value

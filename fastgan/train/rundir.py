"""Where a run writes, without touching another run's files.

A new run goes into a folder that holds no run (``--out``), or, without ``--out``, into a fresh numbered folder
``runs/NNNNN-<loss>-<data>-s<seed>`` (StyleGAN2-ADA numbers its runs so), created when its number is picked
(``os.mkdir`` fails for a folder another run just made: the next number is taken), so that runs started together
never share one. A new run claims its folder by creating metrics.jsonl exclusively: of two runs started into the
same ``--out`` at once, the second is refused. A folder holding a run is only continued (``--resume``) or, when
asked for explicitly (``--overwrite``), cleared of that run's files first.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

# What a run writes; any of them means the folder holds a run.
RUN_FILES = (
    "metrics.jsonl",
    "summary.json",
    "checkpoint.pt",
    "checkpoint.prev.pt",
    "checkpoint.tmp",
    "best.pt",
    "best.tmp",
    "samples.png",
    "samples.pt",
    "curves.png",
)
_NUMBERED = re.compile(r"^(\d{5,})-(.+)$")


class RunDirError(ValueError):
    """An output folder that cannot take this run."""


def holds_run(out: Path) -> list[str]:
    """The run files in ``out`` (empty when it holds no run)."""
    return [name for name in RUN_FILES if (out / name).exists()]


def check(out: Path, resume: bool, overwrite: bool) -> None:
    """``RunDirError`` unless ``out`` can take the run: a folder (or a path one can be made at) that is
    writable, holding no run unless ``resume`` or ``overwrite``."""
    if resume and overwrite:
        raise RunDirError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file, not a folder")
    existing = next(p for p in (out.absolute(), *out.absolute().parents) if p.exists())
    try:  # a file made and removed where the run's folder is or would be made: nothing else is written
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise RunDirError(f"--out {out}: cannot write in {existing} ({exc.strerror or exc})") from None
    found = holds_run(out) if out.is_dir() else []
    if found and not resume and not overwrite:
        raise RunDirError(
            f"--out {out} holds another run ({', '.join(found)}): pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out"
        )


def claim(out: Path) -> None:
    """Create ``out``'s metrics.jsonl (empty) for a new run: ``RunDirError`` if another run created it first."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        (out / "metrics.jsonl").open("x").close()
    except FileExistsError:
        raise RunDirError(
            f"--out {out} was taken by another run started at the same time; choose another --out"
        ) from None


def clear(out: Path) -> None:
    """Remove the run files of ``out`` (``--overwrite``; other files are left)."""
    for name in holds_run(out):
        (out / name).unlink()


def _numbered(root: Path, name: str) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    runs = []
    for path in root.iterdir():
        match = _NUMBERED.match(path.name)
        if match and path.is_dir():
            runs.append((int(match.group(1)), path))
    return sorted(r for r in runs if _NUMBERED.match(r[1].name).group(2) == name) if name else sorted(runs)


def new_run_dir(root: Path, name: str) -> Path:
    """A new, empty folder ``root/NNNNN-name``, NNNNN one more than any numbered run in ``root`` (or the first
    free number after it: the folder is made here, and making it fails where another run made it first)."""
    numbers = [n for n, _ in _numbered(root, "")]
    number = max(numbers) + 1 if numbers else 0
    root.mkdir(parents=True, exist_ok=True)
    while True:
        path = root / f"{number:05d}-{name}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            number += 1


def latest_run_dir(root: Path, name: str) -> Path:
    """The newest ``root/NNNNN-name`` (``RunDirError`` when there is none): what ``--resume`` without ``--out``
    continues."""
    runs = _numbered(root, name)
    if not runs:
        raise RunDirError(f"--resume: no earlier run {root}/NNNNN-{name}; give the run's folder with --out")
    return runs[-1][1]

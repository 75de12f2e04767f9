"""The process group of a run started by torchrun, and the device each process trains on."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .. import distributed
from .settings import Settings


def run_device(name: str) -> torch.device:
    """The device of ``--device name`` for this process (``auto``: CUDA when there is one; one GPU per local rank
    of a multi-process run)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but no CUDA device is available")
    if name == "cuda" and distributed.world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per local rank
    return torch.device(name)


class Membership:
    """This process's place in a multi-process run: ``group`` (None for one process), joined here when torchrun
    started the process (and then left by :meth:`leave`), after every rank's settings were found equal."""

    def __init__(self, settings: Settings, device: torch.device):
        self.group: dist.ProcessGroup | None = None
        self.owns = False
        if not dist.is_initialized():
            if not distributed.launched():
                return
            distributed.init_from_environment(device.type, settings.dist_timeout)
            self.owns = True
        try:
            distributed.same_settings(settings.options())
        except Exception:
            if self.owns:
                dist.destroy_process_group()
            raise
        self.group = dist.group.WORLD

    def leave(self) -> None:
        """Leave the process group joined here (none joined, nothing to leave)."""
        if self.owns and dist.is_initialized():
            dist.destroy_process_group()
            self.owns = False

    def lost(self) -> None:
        """A collective failed: a group with a lost rank is not destroyed (that can hang or abort)."""
        self.owns = False

"""SIGINT and SIGTERM during a run: the loop stops after the current step, with a checkpoint of it."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + signal number


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run after a step; the checkpoint of that step was written."""

    def __init__(self, signum: int, step: int, out: Path):
        self.signum, self.step, self.out = signum, step, out
        super().__init__(
            f"interrupted by {signal.Signals(signum).name} after step {step}; its checkpoint is in "
            f"{out}/: continue with --resume --out {out}"
        )

    @property
    def exit_status(self) -> int:
        return SIGNAL_EXIT[self.signum]


class StopRequest:
    """SIGINT and SIGTERM handlers (in the main thread) that ask the loop to stop after the current step; a
    second signal stops at once, as without them."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict = {}
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNAL_EXIT:
                self._previous[signum] = signal.signal(signum, self._ask)

    def _ask(self, signum: int, frame: object) -> None:
        self.signum = signum
        signal.signal(signum, self._previous[signum])

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

"""Which code is the user's: for warnings that point at the user's line, and for messages that name it."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

from . import kernels

# fastgan's own code (fastgan.kernels may be installed apart from fastgan's other modules), and torch's.
OURS = tuple(str(Path(f).resolve().parent) for f in (__file__, kernels.__file__))
LIBRARIES = (*OURS, str(Path(torch.__file__).resolve().parent))


def is_library(filename: str) -> bool:
    """Whether ``filename`` is torch's or fastgan's code rather than the user's."""
    return filename.startswith(LIBRARIES)


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message)`` attributed to the innermost caller outside fastgan: the user's line that called
    the step or the function, however deep inside fastgan the warning arose."""
    frame, level = sys._getframe(0), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(OURS):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)

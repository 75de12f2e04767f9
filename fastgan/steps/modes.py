"""The modes a step runs in, and the one ``mode="auto"`` picks."""

from __future__ import annotations

import torch

MODES = ("auto", "eager", "compile", "graph", "compile+graph")
GRAPH_MODES = ("graph", "compile+graph")  # the modes that capture CUDA graphs


def auto_mode(
    device: torch.device,
    process_group: torch.distributed.ProcessGroup | None = None,
    module: torch.nn.Module | None = None,
) -> str:
    """The mode ``mode="auto"`` runs on ``device`` for the step of ``module``, chosen by measurement
    (benchmarks/RESULTS.md).

    CPU: ``compile`` for modules without convolutions: a compiled step is faster than eager on every MLP
    measured (the reference's most), and compiling (seconds to tens of seconds on the first call for each input
    shape) is earned back within a run of a few thousand steps. ``eager`` for a module with convolutions: its
    step is the convolutions' and matrix products' time, which compiling does not shorten (the InfoGAN-style
    pair's WGAN-GP step measured slower compiled than eager).

    CUDA: ``graph``: a small step is some 50 kernel launches of host time, which one graph replay removes (the
    fastest mode measured on the reference's MLP by far). With a process group (the gradient all-reduce is not
    captured), or where the optimizer cannot be made capturable (the steps then choose ``compile``
    themselves): ``compile``. ``compile+graph`` (the compiled step captured) has no GPU measurement yet, so
    ``auto`` does not pick it.
    """
    if torch.device(device).type == "cpu":
        convolves = module is not None and any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in module.modules())
        return "eager" if convolves else "compile"
    return "graph" if process_group is None else "compile"


def check_mode(mode: object) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode

"""In-place weight clipping of a whole critic (WGAN's Lipschitz constraint) in one launch per dtype group."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from . import _checks
from ._layout import is_dense
from .backend import uses_triton

_CPU = torch.device("cpu")


def _parameters(module_or_params: torch.nn.Module | torch.Tensor | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(module_or_params, torch.nn.Module):
        return list(module_or_params.parameters())
    if isinstance(module_or_params, torch.Tensor):
        return [module_or_params]
    try:
        params = list(module_or_params)
    except TypeError:
        raise TypeError(
            "module_or_params must be an nn.Module, a tensor or an iterable of tensors, "
            f"got {type(module_or_params).__name__}"
        ) from None
    for p in params:
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"module_or_params must hold tensors only, got a {type(p).__name__}")
    return params


def clip_weights_(
    module_or_params: torch.nn.Module | torch.Tensor | Iterable[torch.Tensor], clip_value: float
) -> None:
    """Clamp every floating-point parameter in place to ``[-clip_value, clip_value]`` (WGAN, c = 0.01).

    Replaces ``for p in D.parameters(): p.data.clamp_(-c, c)``. Parameters keep their storage (no copies);
    non-floating tensors are skipped; NaN stays NaN. On CUDA each (device, dtype) group of dense tensors is
    clamped by one Triton launch whatever the number of tensors; otherwise by ``torch._foreach_clamp_min_/max_``
    (CUDA) or ``clamp_`` (CPU).
    Autograd's version counters are bumped, so a graph that saved a clipped parameter still refuses to
    backward, exactly as after ``clamp_``.

    Args:
        module_or_params: an ``nn.Module``, one tensor, or an iterable of tensors of any shapes, dtypes
            and devices.
        clip_value: c, a finite number > 0.
    """
    clip_value = _checks.positive_real("clip_value", clip_value)
    params = _parameters(module_or_params)
    # CPU tensors on the eager path are clamped as they come (one pass each; CPU foreach ops take two), which
    # keeps this as cheap as the seed's loop; everything else is grouped by (device, dtype) for one launch.
    cpu_eager = not uses_triton(_CPU)
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    with torch.no_grad():
        for p in params:
            if not p.is_floating_point() or p.numel() == 0:
                continue
            if cpu_eager and p.is_cpu:
                p.clamp_(-clip_value, clip_value)
            else:
                groups.setdefault((p.device, p.dtype), []).append(p)
        for (device, dtype), tensors in groups.items():
            _clip_group(device, dtype, tensors, clip_value)


def _clip_group(device: torch.device, dtype: torch.dtype, tensors: list[torch.Tensor], clip_value: float) -> None:
    # The kernel compares in fp32 with an fp32 bound: exact for fp32 and narrower, not for fp64.
    use_kernel = dtype != torch.float64 and uses_triton(device)
    fused: list[torch.Tensor] = []
    rest: list[torch.Tensor] = []
    for t in tensors:
        (fused if use_kernel and is_dense(t) else rest).append(t)
    if fused:
        from .kernels.clamp import clamp_

        clamp_(fused, clip_value)
        for t in fused:
            torch.autograd.graph.increment_version(t)
    if rest and device.type == "cpu":
        for t in rest:
            t.clamp_(-clip_value, clip_value)
    elif rest:
        torch._foreach_clamp_min_(rest, -clip_value)
        torch._foreach_clamp_max_(rest, clip_value)

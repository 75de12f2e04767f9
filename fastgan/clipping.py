"""In-place weight clipping of a whole critic (WGAN's Lipschitz constraint) in one launch per dtype group."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from . import _input_checks
from ._rows import is_dense
from .backend import launchers, requested_backend, uses_triton
from .kernels._preconditions import CLIPPING_DTYPES


def _parameters(module_or_params: torch.nn.Module | torch.Tensor | Iterable[torch.Tensor]) -> Iterable[torch.Tensor]:
    if isinstance(module_or_params, torch.nn.Module):
        # Walked lazily: listing a module's parameters first costs as much as clamping a small critic's.
        return module_or_params.parameters()
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


def clip_weights_(module_or_params: torch.nn.Module | torch.Tensor | Iterable[torch.Tensor], clip_value: float) -> None:
    """Clamp every floating-point parameter in place to ``[-clip_value, clip_value]`` (WGAN, c = 0.01).

    Replaces ``for p in D.parameters(): p.data.clamp_(-c, c)``. Parameters keep their storage (no copies);
    non-floating and empty tensors are skipped; NaN stays NaN. Tensors are grouped by (device, dtype) and the
    backend is chosen per group: on the Triton backend each group's dense fp32/fp16/bf16 tensors are clamped
    by one launch whatever their number; the rest by ``torch._foreach_clamp_min_/max_`` (CUDA) or ``clamp_``
    (CPU). Autograd's version counters are bumped, so a graph that saved a clipped parameter still refuses to
    backward, exactly as after ``clamp_``.

    Args:
        module_or_params: an ``nn.Module``, one tensor, or an iterable of tensors of any shapes, dtypes
            and devices.
        clip_value: c, a finite number > 0.
    """
    clip_value = _input_checks.positive_real("clip_value", clip_value)
    params = _parameters(module_or_params)
    # CPU tensors on the eager path are clamped as they come (one pass each; CPU foreach ops take two), which
    # keeps this as cheap as the reference's loop; the rest is grouped by (device, dtype). The in-place clamps
    # run with grad mode off, switched by the function form of set_grad_enabled: cheaper than a no_grad block or a
    # detached view per tensor. The kernel needs neither.
    cpu_eager = requested_backend() != "triton"
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    eager: list[torch.Tensor] = []
    for p in params:
        if not p.is_floating_point():
            continue
        if cpu_eager and p.is_cpu:
            eager.append(p)
        elif p.numel():
            groups.setdefault((p.device, p.dtype), []).append(p)
    rest: list[list[torch.Tensor]] = []
    for (device, dtype), tensors in groups.items():
        left = _clip_fused(device, dtype, tensors, clip_value)
        if left:
            rest.append(left)
    if not (eager or rest):
        return
    grad_was_enabled = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        for t in eager:
            t.clamp_(-clip_value, clip_value)
        for tensors in rest:
            if tensors[0].is_cpu:
                for t in tensors:  # one pass each: CPU foreach ops take two
                    t.clamp_(-clip_value, clip_value)
            else:
                torch._foreach_clamp_min_(tensors, -clip_value)
                torch._foreach_clamp_max_(tensors, clip_value)
    finally:
        torch.set_grad_enabled(grad_was_enabled)


def _clip_fused(device: torch.device, dtype: torch.dtype, tensors: list[torch.Tensor], clip_value: float):
    """Clamp the tensors of one (device, dtype) group the kernel can, in one launch; returns the others."""
    if not (dtype in CLIPPING_DTYPES and uses_triton(device)):
        return tensors
    fused: list[torch.Tensor] = []
    rest: list[torch.Tensor] = []
    for t in tensors:
        (fused if is_dense(t) else rest).append(t)
    if fused:
        launchers("clipping").clip_(
            fused, clip_value, check=False
        )  # chosen here: one device and dtype, dense, non-empty
        torch.autograd.graph.increment_version(fused)
    return rest

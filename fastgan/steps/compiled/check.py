"""Whether a compiled step computed what the eager step computes: its gradients and the buffers it updated.

Compiled double backward has had silent wrong answers (pytorch/pytorch#136662), so compile mode runs the eager
step's gradients on the first call for each input shape and compares. Where the gradients differ by more than
rounding usually makes, float64 gradients of the same step judge: a WGAN critic's gradients cancel between
real and fake, and carry fp32 errors of 1e-3 in eager too.
"""

from __future__ import annotations

import math

import torch

# The largest relative difference (norm per tensor) allowed between compiled and eager gradients or updated
# buffers on a new shape: fp32 arithmetic in a different order, or bf16/fp16 autocast (where a wrong term is
# still off by far more).
RTOL = 1e-3
RTOL_AUTOCAST = 5e-2
# Where compiled and eager gradients differ by more than that, float64 gradients of the same step judge: the
# compiled ones pass if they are within this many times eager's own distance from them.
NOISE_FACTOR = 4.0
# A tensor whose gradient norm is below this fraction of the whole gradient's has none but rounding noise.
ZERO_GRADIENT = 1e-6


def tolerance(device: torch.device, precision: str = "fp32") -> float:
    """The tolerance for a step in ``precision`` under the autocast state of ``device`` now."""
    low = (
        precision != "fp32"
        or torch.is_autocast_enabled(device.type)
        and torch.get_autocast_dtype(device.type) in (torch.bfloat16, torch.float16)
    )
    return RTOL_AUTOCAST if low else RTOL


def first_mismatch(
    names: list[str],
    grads: list[torch.Tensor],
    eager_grads: list[torch.Tensor | None],
    rtol: float,
    reference: list[torch.Tensor] | None = None,
) -> str | None:
    """What differs between compiled and eager gradients (None when they agree).

    Each tensor's difference may be ``rtol`` of its eager gradient's norm plus ``ZERO_GRADIENT`` of the whole
    gradient's: a gradient that is zero in exact arithmetic (the bias before a BatchNorm) is rounding noise in
    both, and noises do not agree. With ``reference`` (float64 gradients of the same step), a tensor beyond that
    still agrees if its distance from the reference is at most ``rtol`` of the reference's norm or
    ``NOISE_FACTOR`` times eager's distance from it (plus the floor): as accurate as eager."""
    norms = [None if e is None else float(e.float().norm()) for e in eager_grads]
    floor = ZERO_GRADIENT * math.sqrt(sum(n * n for n in norms if n is not None))
    for i, (name, g, e, norm) in enumerate(zip(names, grads, eager_grads, norms)):
        if e is None:
            if g.any():
                return f"the compiled step gives {name} a gradient eager does not"
        elif float((g.float() - e.float()).norm()) > rtol * (norm or 0.0) + floor and (
            reference is None or not as_accurate(g, e, reference[i], rtol, floor)
        ):
            return f"the compiled gradient of {name} differs from eager"
    return None


def as_accurate(g: torch.Tensor, e: torch.Tensor, r: torch.Tensor, rtol: float, floor: float) -> bool:
    error, eager_error = float((g.double() - r).norm()), float((e.double() - r).norm())
    return error <= max(rtol * float(r.norm()), NOISE_FACTOR * eager_error) + floor


def buffer_mismatch(
    names: list[str], compiled: list[torch.Tensor], eager: list[torch.Tensor], rtol: float
) -> str | None:
    """Which buffer the compiled step left other than the eager step did (None when all agree): integer
    buffers (counters) exactly, floating ones within ``rtol`` of the eager value's norm."""
    for name, c, e in zip(names, compiled, eager):
        if c.is_floating_point():
            nan = e.isnan()  # NaN in, NaN out: NaNs in the same places are no mismatch
            same_nans = torch.equal(nan, c.isnan())
            c, e = c.double().masked_fill(nan, 0.0), e.double().masked_fill(nan, 0.0)
            agree = same_nans and float((c - e).norm()) <= rtol * float(e.norm()) + 1e-30
        else:
            agree = torch.equal(c, e)
        if not agree:
            return f"the compiled step updates the buffer {name} differently from eager"
    return None

"""Each launcher checks its own preconditions: a direct call with bad arguments raises, naming the argument,
before any kernel runs, and leaves every tensor untouched (no out-of-bounds access, no silent rounding)."""

import re

import pytest
import torch
from helpers import make

from fastgan.kernels.clipping import clip_
from fastgan.kernels.interpolation import interpolation_bwd, interpolation_fwd
from fastgan.kernels.loss_terms import LINEAR, Term
from fastgan.kernels.losses import losses_bwd, losses_fwd
from fastgan.kernels.norm_penalty import penalty_bwd, penalty_fwd


def _rows(device, layout="contiguous", dtype=torch.float32, seed=0):
    return make((3, 2, 4, 5), dtype, device, layout, seed=seed)


def _calls(device):
    real, fake = _rows(device, seed=1), _rows(device, seed=2)
    alpha = torch.rand(3, device=device)
    out = torch.empty_like(real)
    g = _rows(device, seed=3)
    norms = torch.ones(3, device=device)
    one = torch.ones((), device=device)
    scores = torch.randn(8, 1, device=device)
    term = Term(LINEAR)
    return [
        ("fake", ValueError, lambda: interpolation_fwd(real, _rows(device, "channels_last"), alpha, out)),
        (
            "fake",
            ValueError,
            lambda: interpolation_fwd(
                _rows(device, "channels_last"),
                _rows(device, "hw_swapped"),
                alpha,
                torch.empty_like(_rows(device, "channels_last")),
            ),
        ),
        ("real", ValueError, lambda: interpolation_fwd(_rows(device, "strided"), fake, alpha, out)),
        ("out", TypeError, lambda: interpolation_fwd(real, fake, alpha, out.half())),
        ("out", ValueError, lambda: interpolation_fwd(real, fake, alpha, out[:2])),
        ("alpha", ValueError, lambda: interpolation_fwd(real, fake, torch.rand(3, 2, device=device)[:, 0], out)),
        ("alpha", ValueError, lambda: interpolation_fwd(real, fake, alpha[:2], out)),
        ("real", TypeError, lambda: interpolation_fwd(real.int(), fake.int(), alpha, out)),
        ("grad_out", ValueError, lambda: interpolation_bwd(real[:, :1], real, fake, alpha, None, None, True)),
        ("d_real", TypeError, lambda: interpolation_bwd(real, real, fake, alpha, out.double(), None, False)),
        ("g", ValueError, lambda: penalty_fwd(_rows(device, "strided"), 1.0, False)),
        ("g", TypeError, lambda: penalty_fwd(g.to(torch.int16), 1.0, False)),
        ("dg", ValueError, lambda: penalty_bwd(g, norms, one, torch.empty_like(g)[:, :1], 1.0, False)),
        ("norms", TypeError, lambda: penalty_bwd(g, norms.double(), one, torch.empty_like(g), 1.0, False)),
        ("norms", ValueError, lambda: penalty_bwd(g, norms[:2], one, torch.empty_like(g), 1.0, False)),
        ("grad_out", ValueError, lambda: penalty_bwd(g, norms, norms, torch.empty_like(g), 1.0, False)),
        ("a", ValueError, lambda: losses_fwd(torch.randn(8, 2, device=device), term, None, None)),
        ("b", ValueError, lambda: losses_fwd(scores, term, torch.randn(8, 3, device=device), term)),
        ("b", ValueError, lambda: losses_fwd(scores, term, torch.randn(8, device="meta"), term)),
        ("grad_out", ValueError, lambda: losses_bwd(scores[:2, 0], scores, term, None, None)),
        ("tensors[0]", TypeError, lambda: clip_([norms.double()], 0.1)),
        ("tensors[1]", TypeError, lambda: clip_([norms, norms.half()], 0.1)),
        ("tensors[1]", ValueError, lambda: clip_([norms, g[:, :, ::2]], 0.1)),
        ("tensors", ValueError, lambda: clip_([], 0.1)),
        ("clip_value", ValueError, lambda: clip_([norms], 0.0)),
        ("clip_value", ValueError, lambda: clip_([norms], float("nan"))),
    ], [real, fake, alpha, out, g, norms, scores]


@pytest.mark.parametrize("index", range(25))
def test_bad_direct_calls_raise_before_launching(device, index):
    calls, tensors = _calls(device)
    name, error, call = calls[index]
    before = [t.clone() for t in tensors]
    with pytest.raises(error, match=rf"(^|\W){re.escape(name)}(\W|$)"):
        call()
    assert all(torch.equal(t, b) or (t.isnan() == b.isnan()).all() for t, b in zip(tensors, before))


def test_cpu_tensors_are_refused_without_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="g is on cpu"):
        penalty_fwd(x, 1.0, False)
    with pytest.raises(ValueError, match=r"tensors\[0\] is on cpu"):
        clip_([x], 0.1)

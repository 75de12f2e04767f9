"""Bad input gets a clear error naming the argument, before any kernel runs, with the inputs untouched."""

import math

import pytest
import torch
from models import ReferenceCritic

import fastgan
import fastgan.backend


@pytest.fixture
def pair(device):
    return torch.randn(4, 6, device=device), torch.randn(4, 6, device=device)


def _untouched(*tensors):
    copies = [t.clone() for t in tensors]
    return lambda: all(torch.equal(t, c) for t, c in zip(tensors, copies))


CASES = [
    ("fake", ValueError, lambda r, f: fastgan.interpolate(r, f[:3])),
    ("fake", ValueError, lambda r, f: fastgan.interpolate(r, f.reshape(4, 2, 3))),
    ("real", TypeError, lambda r, f: fastgan.interpolate(r.long(), f)),
    ("fake", TypeError, lambda r, f: fastgan.interpolate(r, f.double())),
    ("real", TypeError, lambda r, f: fastgan.interpolate(r.tolist(), f)),
    ("alpha", ValueError, lambda r, f: fastgan.interpolate(r, f, torch.rand(3, device=r.device))),
    ("alpha", ValueError, lambda r, f: fastgan.interpolate(r, f, torch.rand(4, 6, device=r.device))),
    ("alpha", TypeError, lambda r, f: fastgan.interpolate(r, f, torch.ones(4, dtype=torch.int64, device=r.device))),
    ("alpha", ValueError, lambda r, f: fastgan.interpolate(r, f, torch.rand(4, device="meta"))),
    ("fake", ValueError, lambda r, f: fastgan.interpolate(r, torch.randn(4, 6, device="meta"))),
    ("real", ValueError, lambda r, f: fastgan.interpolate(r[:0], f[:0])),
    ("real", ValueError, lambda r, f: fastgan.interpolate(r[0, 0], f[0, 0])),
    ("grads", ValueError, lambda r, f: fastgan.gradient_norm_penalty(r[:0])),
    ("grads", ValueError, lambda r, f: fastgan.gradient_norm_penalty(r[:, :0])),
    ("grads", TypeError, lambda r, f: fastgan.gradient_norm_penalty(r.int())),
    # float8 is floating point but no kernel takes it: refused here, not deep in a launch
    ("grads", TypeError, lambda r, f: fastgan.gradient_norm_penalty(r.to(torch.float8_e4m3fn))),
    ("real", TypeError, lambda r, f: fastgan.interpolate(r.to(torch.float8_e5m2), f.to(torch.float8_e5m2))),
    ("real_out", TypeError, lambda r, f: fastgan.wgan_critic_loss(r[:, 0].to(torch.float8_e4m3fn), f[:, 0])),
    ("center", ValueError, lambda r, f: fastgan.gradient_norm_penalty(r, center=math.nan)),
    ("center", TypeError, lambda r, f: fastgan.gradient_norm_penalty(r, center="1")),
    ("one_sided", TypeError, lambda r, f: fastgan.gradient_norm_penalty(r, one_sided=1)),
    ("critic", TypeError, lambda r, f: fastgan.gradient_penalty(None, r, f)),
    ("fake", ValueError, lambda r, f: fastgan.gradient_penalty(lambda x: x.sum(1), r, f[:2])),
    ("fake_samples", ValueError, lambda r, f: fastgan.compute_gradient_penalty(lambda x: x, r, f[:, :2])),
    ("real_samples", TypeError, lambda r, f: fastgan.compute_gradient_penalty(lambda x: x, r.bool(), f)),
]


@pytest.mark.parametrize("name,error,call", CASES)
def test_bad_input_names_the_argument_and_changes_nothing(backend, pair, name, error, call):
    real, fake = pair
    untouched = _untouched(real, fake)
    with pytest.raises(error, match=rf"\b{name}\b"):
        call(real, fake)
    assert untouched()


def test_bad_input_leaves_the_random_generator_alone(backend, pair):
    real, fake = pair
    critic = ReferenceCritic(6)
    state = torch.get_rng_state()
    with pytest.raises(ValueError, match="fake_samples"):
        fastgan.compute_gradient_penalty(critic, real, fake[:2])
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("clip_value", [0, -0.01, math.nan, math.inf])
def test_bad_clip_value_leaves_parameters_untouched(backend, device, clip_value):
    critic = ReferenceCritic(6).to(device)
    untouched = _untouched(*critic.parameters())
    with pytest.raises(ValueError, match="clip_value"):
        fastgan.clip_weights_(critic, clip_value)
    assert untouched()


@pytest.mark.parametrize("params,error", [(3, TypeError), ([torch.zeros(2), "w"], TypeError)])
def test_bad_parameters(backend, params, error):
    with pytest.raises(error, match="module_or_params"):
        fastgan.clip_weights_(params, 0.01)


def test_clip_value_must_be_a_number(backend):
    with pytest.raises(TypeError, match="clip_value"):
        fastgan.clip_weights_([torch.zeros(2)], "0.01")


def test_unknown_backend_is_refused(monkeypatch, pair):
    monkeypatch.setenv("FASTGAN_BACKEND", "cuda")
    with pytest.raises(ValueError, match="backend"):
        fastgan.interpolate(*pair)
    with pytest.raises(ValueError, match="backend"):
        with fastgan.use_backend("fast"):
            pass


def test_forced_triton_on_cpu_without_the_interpreter_is_refused(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with fastgan.use_backend("triton"), pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        fastgan.interpolate(torch.randn(2, 3), torch.randn(2, 3))


def test_scalar_arguments_take_real_numbers_of_any_type_and_refuse_bools_and_the_rest():
    """float and int take a fast path; NumPy scalars and Fractions are Real numbers too; a bool, a string, None
    and a non-finite value are refused, naming the argument."""
    import fractions

    import numpy as np

    weight = torch.nn.Parameter(torch.tensor([0.5, -0.5]))
    for value in (1, 0.25, np.float32(0.25), fractions.Fraction(1, 4)):
        fastgan.clip_weights_([weight], value)
        assert weight.abs().max().item() <= float(value)
        fastgan.gradient_norm_penalty(torch.ones(2, 3), center=value)
    for value, error in ((True, TypeError), (np.bool_(True), TypeError), ("1", TypeError), (None, TypeError)):
        with pytest.raises(error, match="clip_value"):
            fastgan.clip_weights_([weight], value)
        with pytest.raises(error, match="center"):
            fastgan.gradient_norm_penalty(torch.ones(2, 3), center=value)
    with pytest.raises(ValueError, match="center"):
        fastgan.gradient_norm_penalty(torch.ones(2, 3), center=float("nan"))

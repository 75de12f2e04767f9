import pytest
import torch
from models import ConvCritic, SeedCritic

import fastgan
import fastgan.kernels.clamp as clamp_kernels
from fastgan import reference


def _many_tensors(device):
    """120 tensors of mixed shapes (odd, prime, 2^k+17, 0-dim) in three float dtypes, plus int buffers."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(), (1,), (7,), (1041,), (3, 5), (17, 13), (8, 3, 3, 3), (9000,)]
    tensors = []
    for i in range(120):
        dtype = (torch.float32, torch.float16, torch.bfloat16)[i % 3]
        t = torch.randn(shapes[i % len(shapes)], generator=gen) * 0.05
        tensors.append(t.to(device, dtype))
    tensors.append(torch.arange(10, device=device))  # not floating: left alone
    return tensors


def test_many_mixed_tensors_match_clamp_in_place(backend, device):
    tensors = _many_tensors(device)
    expected = [t.clamp(-0.01, 0.01) if t.is_floating_point() else t.clone() for t in tensors]
    pointers = [t.data_ptr() for t in tensors]
    fastgan.clip_weights_(tensors, 0.01)
    assert [t.data_ptr() for t in tensors] == pointers
    for t, e in zip(tensors, expected):
        assert torch.equal(t, e)


def test_one_launch_per_dtype_group(device, monkeypatch):
    launches = []
    launch = clamp_kernels.clamp_

    def counting(tensors, clip_value):
        launches.append((tensors[0].dtype, len(tensors)))
        launch(tensors, clip_value)

    monkeypatch.setattr(clamp_kernels, "clamp_", counting)
    with fastgan.use_backend("triton"):
        fastgan.clip_weights_(_many_tensors(device), 0.01)
    assert sorted(launches, key=str) == [(torch.bfloat16, 40), (torch.float16, 40), (torch.float32, 40)]


@pytest.mark.parametrize("critic_cls", [SeedCritic, ConvCritic])
def test_module_matches_the_seeds_loop(backend, device, critic_cls):
    torch.manual_seed(0)
    critic = critic_cls().to(device)
    critic(torch.zeros((1, 784) if critic_cls is SeedCritic else (1, 3, 16, 16), device=device))
    ref_critic = critic_cls().to(device)
    ref_critic.load_state_dict(critic.state_dict())
    fastgan.clip_weights_(critic, 0.01)
    reference.clip_weights_(ref_critic, 0.01)
    for p, p_ref in zip(critic.parameters(), ref_critic.parameters()):
        assert torch.equal(p, p_ref)
        assert p.abs().max() <= 0.01


def test_nan_stays_nan_and_bounds_are_inclusive(backend, device):
    t = torch.tensor([float("nan"), -1.0, -0.5, 0.0, 0.5, 1.0, float("inf"), -float("inf")], device=device)
    fastgan.clip_weights_(t, 0.5)
    assert torch.isnan(t[0])
    assert t[1:].tolist() == [-0.5, -0.5, 0.0, 0.5, 0.5, 0.5, -0.5]


def test_float64_and_non_dense_tensors(backend, device):
    wide = torch.randn(6, 10, device=device)
    view = wide[:, ::2]  # not dense: clamped through the eager path, in place in ``wide``
    double = torch.randn(33, device=device, dtype=torch.float64)
    expected_wide = wide.clone()
    expected_wide[:, ::2] = expected_wide[:, ::2].clamp(-0.3, 0.3)
    expected_double = double.clamp(-0.3, 0.3)
    fastgan.clip_weights_([view, double], 0.3)
    assert torch.equal(wide, expected_wide) and torch.equal(double, expected_double)


def test_version_counter_is_bumped(backend, device):
    weight = torch.nn.Parameter(torch.randn(4, 4, device=device))
    loss = (weight * weight).sum()  # saves weight for backward
    fastgan.clip_weights_([weight], 0.1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_clip_value_is_not_specialized_and_table_is_cached(device):
    tensors = [torch.randn(100, device=device) for _ in range(5)]
    with fastgan.use_backend("triton"):
        fastgan.clip_weights_(tensors, 0.5)
        cached = len(clamp_kernels._tables)
        fastgan.clip_weights_(tensors, 0.25)
        assert len(clamp_kernels._tables) == cached
    assert max(t.abs().max().item() for t in tensors) <= 0.25

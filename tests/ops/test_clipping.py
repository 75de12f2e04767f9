import pytest
import torch
from helpers import INTERPRETED
from models import ConvCritic, ReferenceCritic

import fastgan
import fastgan.kernels.clipping as clipping_kernels
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
    launch = clipping_kernels.clip_

    def counting(tensors, clip_value, **options):
        launches.append((tensors[0].dtype, len(tensors)))
        launch(tensors, clip_value, **options)

    monkeypatch.setattr(clipping_kernels, "clip_", counting)
    with fastgan.use_backend("triton"):
        fastgan.clip_weights_(_many_tensors(device), 0.01)
    assert sorted(launches, key=str) == [(torch.bfloat16, 40), (torch.float16, 40), (torch.float32, 40)]


@pytest.mark.parametrize("critic_cls", [ReferenceCritic, ConvCritic])
def test_module_matches_the_reference_loop(backend, device, critic_cls):
    torch.manual_seed(0)
    critic = critic_cls().to(device)
    critic(torch.zeros((1, 784) if critic_cls is ReferenceCritic else (1, 3, 16, 16), device=device))
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


def test_grad_mode_is_left_as_it_was(backend, device):
    """Clipping switches grad mode off for its in-place clamps and back afterwards, also when it raises."""
    weight = torch.nn.Parameter(torch.randn(4, 4, device=device))
    fastgan.clip_weights_([weight], 0.1)
    assert torch.is_grad_enabled() and weight.requires_grad
    with torch.no_grad():
        fastgan.clip_weights_([weight], 0.1)
        assert not torch.is_grad_enabled()

    class Failing(torch.nn.Module):  # its parameters fail while clipping walks them
        def parameters(self, recurse=True):
            yield weight
            raise RuntimeError("lost the rest")

    with pytest.raises(RuntimeError, match="lost the rest"):
        fastgan.clip_weights_(Failing(), 0.1)
    assert torch.is_grad_enabled()


def test_chunk_table_is_built_once_and_reused(device):
    tensors = [torch.randn(n, device=device) for n in (100, 9000, 3)]
    with fastgan.use_backend("triton"):
        fastgan.clip_weights_(tensors, 0.5)
    table = clipping_kernels.chunk_table(tensors)
    assert clipping_kernels.chunk_table(tensors) is table
    addrs, lens = table
    # 100, then 9000 in chunks of CHUNK, then 3: every element covered once, in order.
    expected = [100, *[min(clipping_kernels.CHUNK, 9000 - s) for s in range(0, 9000, clipping_kernels.CHUNK)], 3]
    assert lens.tolist() == expected
    assert addrs[0].item() == tensors[0].data_ptr() and addrs[-1].item() == tensors[2].data_ptr()
    assert addrs[2].item() == tensors[1].data_ptr() + clipping_kernels.CHUNK * 4


@pytest.mark.skipif(INTERPRETED, reason="the interpreter compiles nothing")
def test_new_clip_value_reuses_the_compiled_kernel(device):
    tensors = [torch.randn(100, device=device) for _ in range(5)]
    with fastgan.use_backend("triton"):
        fastgan.clip_weights_(tensors, 0.5)
        kernel = clipping_kernels.clipping_kernel
        compiled = sum(len(cache[0]) for cache in kernel.fn.device_caches.values())
        fastgan.clip_weights_(tensors, 0.25)
        assert sum(len(cache[0]) for cache in kernel.fn.device_caches.values()) == compiled
        assert kernel.cached() == 1
    assert max(t.abs().max().item() for t in tensors) <= 0.25


def test_empty_and_non_floating_inputs_are_a_no_op(backend, device):
    fastgan.clip_weights_([], 0.01)
    ints = torch.arange(5, device=device)
    fastgan.clip_weights_([ints, torch.empty(0, device=device)], 0.01)
    assert ints.tolist() == [0, 1, 2, 3, 4]


def test_backend_is_chosen_per_device_and_dtype_group(device, monkeypatch):
    """Forced Triton: each dense fp32/fp16/bf16 group goes to the kernel, fp64 and strided tensors to PyTorch."""
    launched = []
    launch = clipping_kernels.clip_
    monkeypatch.setattr(
        clipping_kernels, "clip_", lambda ts, c, **options: (launched.append(ts[0].dtype), launch(ts, c, **options))
    )
    tensors = [torch.randn(9, device=device, dtype=dt) for dt in (torch.float64, torch.float16)]
    strided = torch.randn(4, 6, device=device)[:, ::2]
    with fastgan.use_backend("triton"):
        fastgan.clip_weights_([*tensors, strided], 0.3)
    assert launched == [torch.float16]
    assert all(t.abs().max() <= 0.3 for t in (*tensors, strided))


def test_memory_around_the_clipped_tensors_is_untouched(backend, device):
    # Views into one buffer, each ending mid-chunk: the kernel must write exactly their elements.
    buffer = torch.randn(3 * 10000, device=device) * 10
    views = [buffer[17:8209], buffer[10000:10001], buffer[20005:29999]]
    expected = buffer.clone()
    for start, stop in ((17, 8209), (10000, 10001), (20005, 29999)):
        expected[start:stop] = expected[start:stop].clamp(-0.5, 0.5)
    fastgan.clip_weights_(views, 0.5)
    assert torch.equal(buffer, expected)

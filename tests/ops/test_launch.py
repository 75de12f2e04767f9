"""The direct launches' cache key against Triton's own specialization rule, and the cache's behaviour.

Without a GPU nothing compiles, so the cache is driven here through a stand-in of Triton's launch path whose
"compiled kernels" refuse, at launch, arguments that Triton would have compiled differently: a wrong cache hit
fails. The real compiled kernels are launched both ways and compared in tests/gpu/test_gpu.py.
"""

import itertools

import pytest
import torch
import triton.language as tl
from helpers import launched_kernels
from stand_in_triton import driven, jit_form, triton_specialization
from triton import knobs
from triton.runtime.jit import JITFunction

from fastgan.kernels import interpolation, launch, norm_penalty

KERNELS = launched_kernels()

_BUFFER = torch.zeros(64)
# One value of each kind Triton tells apart, and values it does not (aligned pointers of one dtype, integers
# of one width and residue class).
TENSORS = [
    _BUFFER[:8],
    _BUFFER[4:12],
    _BUFFER[1:9],
    _BUFFER.to(torch.float16)[:8],
    _BUFFER.to(torch.bfloat16)[:8],
    _BUFFER.double()[:8],
    _BUFFER.long()[:8],
    _BUFFER.int()[3:9],
]
INTS = [1, 2, 3, 16, 32, 17, -16, -1, 2**31 - 16, 2**31 - 1, 2**31, 2**31 + 16, 2**32, 2**63 - 1, 2**63, 2**64 - 16]
OTHERS = [None, True, False, 0.5, 1.0]
VALUES = TENSORS + INTS + OTHERS


def split(jit: JITFunction, values):
    """Positional non-constexprs and keyword constexprs, as the launchers pass them."""
    n = sum(not p.is_constexpr for p in jit.params)
    return tuple(values[:n]), dict(zip(jit.arg_names[n:], values[n:]))


def base_values(jit: JITFunction) -> list:
    return [tl.float32 if p.is_constexpr else _BUFFER[:8] for p in jit.params]


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.fn.__name__)
def test_equal_keys_exactly_when_triton_compiles_the_same_kernel(kernel):
    jit = jit_form(kernel)
    keyed = launch.DirectKernel(jit, direct=True)
    base = base_values(jit)
    for i, p in enumerate(jit.params):
        choices = [tl.float32, tl.float64, 8, 16, 1, True, False] if p.is_constexpr else VALUES
        for a, b in itertools.combinations(choices, 2):
            args_a, args_b = list(base), list(base)
            args_a[i], args_b[i] = a, b
            key_a, key_b = (
                keyed.key(args, {**constexprs, "num_warps": 4})
                for args, constexprs in (split(jit, args_a), split(jit, args_b))
            )
            same_triton = triton_specialization(jit, args_a, 4) == triton_specialization(jit, args_b, 4)
            assert (key_a == key_b) == same_triton, (p.name, a, b)


def test_num_warps_and_the_debug_knob_are_in_the_key(monkeypatch):
    jit = jit_form(norm_penalty.penalty_fwd_kernel)
    keyed = launch.DirectKernel(jit, direct=True)
    args, constexprs = split(jit, base_values(jit))
    keys = {keyed.key(args, {**constexprs, "num_warps": w}) for w in (4, 8)}
    monkeypatch.setattr(knobs.runtime, "debug", not knobs.runtime.debug)
    keys.add(keyed.key(args, {**constexprs, "num_warps": 4}))
    assert len(keys) == 3


def test_what_only_triton_can_launch_has_no_key():
    jit = jit_form(interpolation.interpolation_fwd_kernel)
    keyed = launch.DirectKernel(jit, direct=True)
    args, constexprs = split(jit, base_values(jit))
    assert keyed.key(args, {**constexprs, "num_warps": 4}) is not None
    assert keyed.key(args, {**constexprs, "num_stages": 2}) is None  # a compile option the key does not hold
    assert keyed.key(args[:-1], constexprs) is None  # an argument missing
    too_wide = list(args)
    too_wide[4] = -(2**63) - 1  # Triton refuses it: never a cache hit
    assert keyed.key(tuple(too_wide), constexprs) is None


def _driven(kernel=interpolation.interpolation_fwd_kernel):
    return driven(kernel)


def _fwd_args(real, B=64, D=2, stride=2, n_chunks=1, **constexprs):
    args = (real, real, _BUFFER[:64], torch.empty_like(real), B, D, stride, stride, stride, n_chunks)
    return args, {"BLOCK_B": 64, "BLOCK_D": 2, "ITERS": 1, "ACC": tl.float32, "num_warps": 4, **constexprs}


def test_each_component_of_the_key_selects_its_own_kernel_and_a_miss_goes_through_triton():
    kernel, triton_path = _driven()
    real = torch.zeros(64, 2)
    variants = [
        _fwd_args(real),
        _fwd_args(real.half()),  # dtype
        _fwd_args(torch.zeros(129)[1:].view(64, 2)),  # a pointer off 16-byte alignment
        _fwd_args(real, B=1),  # an integer equal to 1
        _fwd_args(real, D=16),  # an integer divisible by 16
        _fwd_args(real, stride=2**31),  # a 64-bit integer
        _fwd_args(real, BLOCK_D=4),  # a constexpr
        _fwd_args(real, ACC=tl.float64),  # a constexpr dtype
        _fwd_args(real, num_warps=8),  # the number of warps
    ]
    for i, (args, kwargs) in enumerate(variants):
        kernel[(3,)](*args, **kwargs)
        assert triton_path.calls == i + 1 and kernel.cached() == i + 1  # a miss: Triton's path, and kept
    for _ in range(2):
        for args, kwargs in reversed(variants):
            kernel[(3, 2)](*args, **kwargs)  # hits, each checked against what it was compiled for
    assert triton_path.calls == len(variants)
    for compiled in triton_path.compiled.values():
        assert len(compiled.launches) == 2
        grid, stream, values = compiled.launches[0]
        assert grid == (3, 2, 1) and stream == 7 and len(values) == len(triton_path.arg_names)


def test_values_that_do_not_change_the_specialization_hit():
    kernel, triton_path = _driven()
    for real, stride in ((torch.zeros(64, 2), 2), (torch.ones(64, 2), 6), (torch.zeros(10, 64, 2)[3], 7)):
        kernel[(1,)](*_fwd_args(real, stride=stride)[0], **_fwd_args(real)[1])
    assert triton_path.calls == 1 and kernel.cached() == 1


def test_triton_launches_when_off_with_a_hook_an_unkeyed_option_a_grid_function_or_under_compile(monkeypatch):
    kernel, triton_path = _driven()
    args, kwargs = _fwd_args(torch.zeros(64, 2))
    kernel[(1,)](*args, **kwargs)
    previous = launch.set_direct_launches(False)
    try:
        kernel[(1,)](*args, **kwargs)
    finally:
        launch.set_direct_launches(previous)

    def hook(metadata):
        return None

    knobs.runtime.launch_enter_hook.add(hook)
    try:
        kernel[(1,)](*args, **kwargs)
    finally:
        knobs.runtime.launch_enter_hook.remove(hook)
    kernel[(1,)](*args, **kwargs, num_stages=2)
    kernel[lambda meta: (1,)](*args, **kwargs)  # a grid function
    with monkeypatch.context() as patched:
        patched.setattr(torch.compiler, "is_compiling", lambda: True)
        kernel[(1,)](*args, **kwargs)
    assert triton_path.calls == 6
    kernel[(1,)](*args, **kwargs)
    assert triton_path.calls == 6


def test_a_launcher_that_refuses_its_first_direct_launch_hands_the_kernel_back_to_triton():
    kernel, triton_path = _driven()
    args, kwargs = _fwd_args(torch.zeros(64, 2))
    kernel[(1,)](*args, **kwargs)
    (compiled,) = triton_path.compiled.values()
    compiled.run = lambda *values: (_ for _ in ()).throw(TypeError("another calling convention"))
    with pytest.warns(RuntimeWarning, match="a direct launch failed"):
        kernel[(1,)](*args, **kwargs)
    assert triton_path.calls == 2 and not kernel.direct
    kernel[(1,)](*args, **kwargs)
    assert triton_path.calls == 3


def test_a_failure_after_direct_launches_worked_is_raised():
    kernel, triton_path = _driven()
    args, kwargs = _fwd_args(torch.zeros(64, 2))
    kernel[(1,)](*args, **kwargs)
    kernel[(1,)](*args, **kwargs)  # a direct launch that worked
    (compiled,) = triton_path.compiled.values()
    compiled.run = lambda *values: (_ for _ in ()).throw(RuntimeError("out of resources"))
    with pytest.raises(RuntimeError, match="out of resources"):
        kernel[(1,)](*args, **kwargs)
    assert kernel.direct


def test_the_interpreter_always_takes_tritons_path():
    if isinstance(interpolation.interpolation_fwd_kernel.fn, JITFunction):
        pytest.skip("compiled kernels: the interpreter is off")
    assert not any(kernel.direct for kernel in KERNELS)

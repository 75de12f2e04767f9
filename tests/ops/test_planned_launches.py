"""The launchers' plans (``DirectKernel.planned``) and the drop-in interpolation's remembered signatures: the host
work done once per shape must never launch a kernel compiled for other arguments, nor skip a copy or a check
that a call needs.

The fused ops run here with every kernel swapped for one launched through the stand-in of Triton's launch path
(``stand_in_triton``): each direct launch checks that Triton would have compiled its kernel for the arguments it
is given (dtypes, 16-byte alignment of every pointer, integers' widths and residues, constexprs), so a plan key
that missed anything fails here. The stand-ins compute nothing: the values are checked on the interpreter
below and on the GPU in tests/gpu/test_gpu.py.
"""

import pytest
import torch
from helpers import FP32, assert_elementwise, launched_kernels
from helpers import make as _make
from stand_in_triton import driven, jit_form

import fastgan
from fastgan import reference
from fastgan.kernels import _tiles, launch


@pytest.fixture
def stand_ins(monkeypatch):
    """Every launcher's kernel launched through the stand-in; yields the stand-ins (name -> Triton path)."""
    import importlib

    # The drop-in interpolation remembers planned launches of the kernels being swapped: none kept either way.
    monkeypatch.setattr(fastgan.interpolation, "_LAUNCH_READY", {})
    paths = {}
    for kernel in launched_kernels():
        fn = jit_form(kernel).fn
        module, name = importlib.import_module(fn.__module__), fn.__name__
        stand_in, paths[name] = driven(kernel)
        monkeypatch.setattr(module, name, stand_in)
    with fastgan.use_backend("triton"):
        yield paths


def make(shape, dtype=torch.float32, layout="contiguous", seed=0):
    return _make(shape, dtype, "cpu", layout, seed)


def _misaligned(shape, dtype=torch.float32, offset=1):
    """A tensor whose data starts ``offset`` elements past a 16-byte boundary."""
    n = torch.Size(shape).numel()
    return torch.randn(n + offset, dtype=torch.float32).to(dtype)[offset:].view(shape)


def _ops(real, fake, alpha, grads, scores):
    real, fake, alpha, grads = (t.detach().requires_grad_() for t in (real, fake, alpha, grads))
    out = fastgan.interpolate(real, fake, alpha)
    torch.autograd.grad(out, (real, fake, alpha), torch.ones_like(out))
    fastgan.interpolate(real.detach(), fake.detach(), alpha.detach())  # the drop-in's remembered path
    penalty = fastgan.gradient_norm_penalty(grads)
    torch.autograd.grad(penalty, grads)
    for other in (scores.flip(0), scores[: scores.shape[0] // 2 + 1]):
        a, b = scores.detach().requires_grad_(), other.detach().requires_grad_()
        torch.autograd.grad(fastgan.wgan_critic_loss(a, b), (a, b))
    a, b = scores.detach().requires_grad_(), scores.flip(0).detach().requires_grad_()
    torch.autograd.grad(fastgan.losses.rpgan_discriminator_loss(a, b), (a, b))
    torch.autograd.grad(fastgan.losses.ragan_discriminator_loss(a, b), (a, b))


VARIANTS = {
    "aligned": lambda: (make((6, 5), torch.float32), make((6, 5), torch.float32), torch.rand(6), make((6, 5)), 7),
    "misaligned": lambda: (
        _misaligned((6, 5)),
        _misaligned((6, 5), offset=2),
        _misaligned((6,)),
        _misaligned((6, 5), offset=3),
        7,
    ),
    "fake misaligned alone": lambda: (
        make((6, 5), torch.float32),
        _misaligned((6, 5), offset=2),
        torch.rand(6),
        make((6, 5)),
        7,
    ),
    "bf16 rows of 16": lambda: (
        make((1, 16), torch.bfloat16),
        make((1, 16), torch.bfloat16),
        torch.rand(1, dtype=torch.float16),
        make((1, 16), torch.bfloat16),
        1,
    ),
    "channels_last, several chunks": lambda: (
        make((3, 4, 5, 6), torch.float16, layout="channels_last"),
        make((3, 4, 5, 6), torch.float16, layout="channels_last"),
        torch.rand(3, 1, 1, 1),
        make((3, 4, 5, 6), torch.float16, layout="channels_last"),
        1100,
    ),
    "wide samples": lambda: (make((2, 5000)), make((2, 5000)), torch.rand(2), _misaligned((2, 5000), offset=1), 3),
}


def test_every_planned_launch_runs_a_kernel_compiled_for_its_arguments(stand_ins, small_grid):
    """Each variant twice (the second call takes the plans the first made), then all of them again: every direct
    launch is checked against what Triton would have compiled for its arguments."""
    inputs = {name: make_inputs() for name, make_inputs in VARIANTS.items()}
    for _ in range(2):
        for real, fake, alpha, grads, n_scores in inputs.values():
            _ops(real, fake, alpha, grads, torch.randn(n_scores))
    direct = {
        name: sum(len(compiled.launches) for compiled in path.compiled.values()) for name, path in stand_ins.items()
    }
    compiled = {name: len(path.compiled) for name, path in stand_ins.items()}
    # Every kernel the ops use launched directly, after compiling once per specialization only.
    assert all(direct[name] > 0 for name in direct if name != "clipping_kernel"), direct
    assert all(path.calls == compiled[name] for name, path in stand_ins.items())
    # The misaligned gradients reached the penalty's kernels as they were, and made their own specializations.
    assert compiled["penalty_fwd_kernel"] >= 3 and compiled["penalty_bwd_kernel"] >= 3


def test_clipping_plans_follow_the_tensors_and_the_bound(stand_ins):
    params = [torch.randn(5), _misaligned((8193,)), torch.randn(3, 3).half()]
    for clip_value in (0.1, 0.1, 0.2):
        fastgan.clip_weights_(params, clip_value)
        fastgan.clip_weights_(params[1:], clip_value)
    path = stand_ins["clipping_kernel"]
    assert sum(len(c.launches) for c in path.compiled.values()) > 0
    # Each bound is its own plan (rest arguments), not its own compilation (clip_value is not specialized on).
    bounds = {values[3] for c in path.compiled.values() for _, _, values in c.launches}
    assert {round(b, 3) for b in bounds} == {0.1, 0.2}


@pytest.mark.parametrize(
    "layout",
    [
        "contiguous",
        "channels_last",
        "batch-sliced",
        "sample-strided real",
        "sample-strided fake",
        "alpha (B,1)",
        "alpha view",
    ],
)
def test_a_remembered_interpolation_is_the_first_calls_result(layout):
    """Two calls with one signature: the second skips the checks and layout work the first did, and must still
    give the float64 reference's result (and copy what the kernel cannot read as it is)."""
    shape = (4, 3, 2, 5)
    mem = "channels_last" if layout == "channels_last" else "contiguous"
    real, fake = make(shape, torch.float32, layout=mem, seed=1), make(shape, torch.float32, layout=mem, seed=2)
    alpha = torch.rand(4)
    if layout == "batch-sliced":
        real, fake = make(shape, layout="batch_sliced", seed=1), make(shape, layout="batch_sliced", seed=2)
    elif layout == "sample-strided real":
        real = make((4, 3, 2, 10), seed=1)[..., ::2]
    elif layout == "sample-strided fake":
        fake = make((4, 3, 2, 10), seed=2)[..., ::2]
    elif layout == "alpha (B,1)":
        alpha = torch.rand(4, 1, 1, 1)
    elif layout == "alpha view":
        alpha = torch.rand(8)[::2]
    expected = reference.interpolate(real.double(), fake.double(), alpha.double().reshape(-1, 1, 1, 1))
    # fake + alpha * (real - fake) in fp32: a rounding of each operation, relative to the operands.
    spread = real.double().abs() + fake.double().abs()
    with fastgan.use_backend("triton"):
        for _ in range(3):
            assert_elementwise(
                fastgan.interpolate(real, fake, alpha), expected, torch.float32, ops=0, extra=3 * FP32 * spread
            )


def test_a_remembered_signature_still_refuses_a_tensor_that_needs_grad_checks():
    """The remembered path is for calls without autograd: the same signature with a tensor that requires grad
    goes through the autograd Function (and its gradient is right)."""
    real, fake, alpha = make((4, 3)), make((4, 3), seed=2), torch.rand(4)
    with fastgan.use_backend("triton"):
        fastgan.interpolate(real, fake, alpha)
        fastgan.interpolate(real, fake, alpha)
        leaf = real.clone().requires_grad_()
        (grad,) = torch.autograd.grad(fastgan.interpolate(leaf, fake, alpha).sum(), leaf)
    assert torch.equal(grad, alpha[:, None].expand(4, 3))


def test_planned_takes_tritons_path_under_compile_with_hooks_and_when_off(monkeypatch):
    from fastgan.kernels import interpolation

    kernel, path = driven(interpolation.interpolation_fwd_kernel)
    real = torch.zeros(64, 2)
    pointers = (real, real, torch.rand(64), torch.empty_like(real))

    def build(*key):
        return interpolation._fwd_plan(*key)

    plan_key = (real.shape, real.dtype, 2, 2, 2, _tiles.TARGET_PROGRAMS)
    kernel.planned(plan_key, pointers, build)  # compiles (Triton's path)
    kernel.planned(plan_key, pointers, build)  # direct
    assert path.calls == 1
    previous = launch.set_direct_launches(False)
    try:
        kernel.planned(plan_key, pointers, build)
    finally:
        launch.set_direct_launches(previous)
    with monkeypatch.context() as patched:
        patched.setattr(torch.compiler, "is_compiling", lambda: True)
        kernel.planned(plan_key, pointers, build)
    assert path.calls == 3
    (compiled,) = path.compiled.values()
    assert len(compiled.launches) == 1
    assert jit_form(interpolation.interpolation_fwd_kernel).arg_names == path.arg_names


def test_a_plan_whose_first_direct_launch_is_refused_keeps_launching_through_triton():
    """A Triton whose compiled launcher takes other arguments: the plan's first direct launch warns and hands the
    kernel back to Triton, and the plan keeps no launcher of its own; a failure after direct launches worked is
    raised."""
    from fastgan.kernels import interpolation

    real = torch.zeros(64, 2)
    pointers = (real, real, torch.rand(64), torch.empty_like(real))
    plan_key = (real.shape, real.dtype, 2, 2, 2, _tiles.TARGET_PROGRAMS)
    kernel, path = driven(interpolation.interpolation_fwd_kernel)
    kernel.planned(plan_key, pointers, interpolation._fwd_plan)  # compiles (Triton's path)
    (compiled,) = path.compiled.values()
    compiled.run = lambda *values: (_ for _ in ()).throw(TypeError("another calling convention"))
    with pytest.warns(RuntimeWarning, match="a direct launch failed"):
        kernel.planned(plan_key, pointers, interpolation._fwd_plan)
    kernel.planned(plan_key, pointers, interpolation._fwd_plan)
    assert path.calls == 3 and not kernel.direct
    assert kernel.plan(plan_key, pointers, interpolation._fwd_plan).launcher is None

    kernel, path = driven(interpolation.interpolation_fwd_kernel)
    for _ in range(3):  # compiles, launches directly, launches with the plan's own launcher
        kernel.planned(plan_key, pointers, interpolation._fwd_plan)
    (compiled,) = path.compiled.values()
    assert len(compiled.launches) == 2 and kernel.plan(plan_key, pointers, interpolation._fwd_plan).launcher
    compiled.run = lambda *values: (_ for _ in ()).throw(RuntimeError("out of resources"))
    kernel._plans.clear()  # a new plan reads the compiled kernel's launcher again
    with pytest.raises(RuntimeError, match="out of resources"):
        kernel.planned(plan_key, pointers, interpolation._fwd_plan)
    assert kernel.direct


def test_plans_are_bounded(monkeypatch):
    from fastgan.kernels import interpolation

    kernel, _ = driven(interpolation.interpolation_fwd_kernel)
    monkeypatch.setattr(launch, "_MAX_PLANS", 4)
    for batch in range(1, 11):
        real = torch.zeros(batch, 2)
        key = (real.shape, real.dtype, 2, 2, 2, _tiles.TARGET_PROGRAMS)
        kernel.planned(key, (real, real, torch.rand(batch), torch.empty_like(real)), interpolation._fwd_plan)
        assert len(kernel._plans) <= 4


def test_calls_that_differ_only_in_row_strides_take_their_own_plans(small_grid):
    """One shape, three memory layouts in a row (contiguous, rows further apart, a column of a wider output):
    each must be read with its own strides, in the penalty and the losses, forward and backward."""
    grads_layouts = [make((5, 2, 7)), make((5, 4, 7))[:, :2], make((5, 2, 7), layout="batch_sliced")]
    score_layouts = [make((9, 1), seed=4), make((9, 3), seed=3)[:, 1:2], make((18, 1), seed=5)[::2]]
    fake = score_layouts[0].flip(0)
    with fastgan.use_backend("triton"):
        for grads in grads_layouts:
            g, g64 = grads.detach().requires_grad_(), grads.detach().double().requires_grad_()
            penalty, norms = fastgan.gradient_norm_penalty(g, return_norms=True)
            expected, expected_norms = reference.gradient_norm_penalty(g64)
            assert_elementwise(norms, expected_norms, torch.float32, ops=16)
            assert_elementwise(torch.autograd.grad(penalty, g)[0], torch.autograd.grad(expected, g64)[0], torch.float32)
        for scores in score_layouts:
            a, a64 = scores.detach().requires_grad_(), scores.detach().double().requires_grad_()
            loss, expected = fastgan.wgan_critic_loss(a, fake), reference.wgan_critic_loss(a64, fake.double())
            assert_elementwise(loss, expected, torch.float32, ops=24)
            assert_elementwise(torch.autograd.grad(loss, a)[0], torch.autograd.grad(expected, a64)[0], torch.float32)

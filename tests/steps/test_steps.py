"""Whole steps: the eager step against the reference-style step written by hand, compiled against eager, the lazy
schedule, the EMA, fallbacks and errors. Compiled cases take seconds each (Inductor); the full matrix of losses
and penalties compiled is under ``-m slow``."""

import copy
import warnings

import pytest
import torch
from helpers import stand_in_capture
from models import ConvCritic, ReferenceCritic, ReferenceGenerator
from torch import nn

import fastgan
from fastgan import reference
from fastgan.penalties import PENALTIES

REFERENCE_LOSSES = {
    "wgan": reference.wgan_critic_loss,
    "lsgan": reference.lsgan_discriminator_loss,
    "ns": reference.ns_discriminator_loss,
    "hinge": reference.hinge_discriminator_loss,
}


def _reference_penalty(kind, critic, real, fake, alpha, noise):
    """The catalogue's penalties in the reference's style (fastgan.reference), at the points each one uses."""
    spec = PENALTIES[kind]
    if spec.approximate:
        return reference.approximate_penalty(critic, real if spec.at == "real" else fake, noise)
    if spec.at == "real+fake":
        return reference.squared_gradient_norm(critic, real)[0] + reference.squared_gradient_norm(critic, fake)[0]
    if spec.at == "interpolates":
        return reference.gradient_penalty(critic, real, fake, alpha, spec.center, spec.one_sided)[0]
    if spec.at in ("real", "fake"):
        return reference.squared_gradient_norm(critic, real if spec.at == "real" else fake)[0]
    return reference.dragan_penalty(critic, real, alpha, noise)[0]


def _reference_step(critic, opt, real, fake, loss, penalty, weight, clip=None):
    """One critic step written the reference's way, drawing alpha and noise in the order the steps do."""
    spec = PENALTIES.get(penalty)
    alpha = torch.rand(real.shape[0], device=real.device) if spec and spec.at in ("interpolates", "dragan") else None
    noise = torch.rand(real.shape, dtype=real.dtype, device=real.device) if spec and spec.at == "dragan" else None
    if spec and spec.approximate:
        noise = torch.randn(real.shape, device=real.device).to(real.dtype)
    opt.zero_grad()
    total = REFERENCE_LOSSES[loss](critic(real), critic(fake)) if loss else 0.0
    if penalty:
        total = total + weight * _reference_penalty(penalty, critic, real, fake, alpha, noise)
    total.backward()
    opt.step()
    if clip:
        reference.clip_weights_(critic, clip)


def _setup(kind="mlp", channels_last=False, seed=0, device="cpu"):
    """A small critic and a batch of real and fake samples on ``device`` (the tests parametrized by backend take
    the test device: on a GPU machine Triton kernels need CUDA tensors)."""
    torch.manual_seed(seed)
    if kind == "mlp":
        critic, shape = ReferenceCritic(img_size=20, hidden=16), (8, 20)
    else:
        critic, shape = ConvCritic(), (6, 3, 16, 16)
    real, fake = torch.randn(shape).to(device), torch.randn(shape).to(device)
    critic = critic.to(device)
    critic(real)  # materialise lazy layers
    if channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
        fake = fake.contiguous(memory_format=torch.channels_last)
    return critic, real, fake


def _relative(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.mark.parametrize(
    "loss,penalty",
    [(loss, penalty) for loss in [*REFERENCE_LOSSES, None] for penalty in [*PENALTIES, None] if loss or penalty],
)
def test_eager_step_is_the_reference_style_step(backend, device, loss, penalty):
    critic, real, fake = _setup("conv" if penalty in ("r1", "dragan") else "mlp", device=device)
    ref_critic = copy.deepcopy(critic)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3)
    ref_opt = torch.optim.Adam(ref_critic.parameters(), lr=1e-3)
    step = fastgan.CriticStep(critic, opt, loss=loss, penalty=penalty, penalty_weight=2.0, mode="eager")
    for i in range(3):
        torch.manual_seed(10 + i)
        stats = step(real, fake)
        torch.manual_seed(10 + i)
        _reference_step(ref_critic, ref_opt, real, fake, loss, penalty, 2.0)
    for p, p_ref in zip(critic.parameters(), ref_critic.parameters()):
        torch.testing.assert_close(p, p_ref, rtol=1e-5, atol=1e-7)
    assert set(stats) == (
        {"loss"}
        | ({"wasserstein"} if loss else set())
        | ({"penalty"} if penalty else set())
        | ({"grad_norm_mean", "grad_norm_max"} if penalty and not PENALTIES[penalty].approximate else set())
    )
    assert all(v.dim() == 0 and not v.requires_grad for v in stats.values())


def test_wgan_step_clips_after_the_update(backend, device):
    critic, real, fake = _setup(device=device)
    ref_critic = copy.deepcopy(critic)
    opt = torch.optim.RMSprop(critic.parameters(), lr=5e-3)
    ref_opt = torch.optim.RMSprop(ref_critic.parameters(), lr=5e-3)
    step = fastgan.CriticStep(critic, opt, loss="wgan", clip_value=0.05, mode="eager")
    for _ in range(3):
        step(real, fake)
        _reference_step(ref_critic, ref_opt, real, fake, "wgan", None, 0.0, clip=0.05)
    for p, p_ref in zip(critic.parameters(), ref_critic.parameters()):
        assert torch.equal(p, p_ref) and p.abs().max() <= 0.05


def test_lazy_penalty_is_its_own_update_every_k_calls(backend, device):
    critic, real, fake = _setup("conv", device=device)
    ref_critic = copy.deepcopy(critic)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3)
    ref_opt = torch.optim.Adam(ref_critic.parameters(), lr=1e-3)
    step = fastgan.CriticStep(critic, opt, loss="ns", penalty="r1", penalty_weight=0.5, lazy_every=3, mode="eager")
    applied = []
    for i in range(7):
        stats = step(real, fake)
        applied.append("penalty" in stats)
        _reference_step(ref_critic, ref_opt, real, fake, "ns", None, 0.0)
        if i % 3 == 0:  # StyleGAN2's Dreg phase: the penalty alone, weight x k
            _reference_step(ref_critic, ref_opt, real, fake, None, "r1", 0.5 * 3)
    assert applied == [True, False, False, True, False, False, True]
    for p, p_ref in zip(critic.parameters(), ref_critic.parameters()):
        torch.testing.assert_close(p, p_ref, rtol=1e-5, atol=1e-7)


def test_generator_step_and_its_ema(backend, device):
    torch.manual_seed(0)
    generator = ReferenceGenerator(latent_dim=4, img_size=20, hidden=16).to(device)
    critic = ReferenceCritic(img_size=20, hidden=16).to(device)
    ref_generator = copy.deepcopy(generator)
    opt = torch.optim.Adam(generator.parameters(), lr=1e-3)
    ref_opt = torch.optim.Adam(ref_generator.parameters(), lr=1e-3)
    step = fastgan.GeneratorStep(generator, critic, opt, loss="wgan", ema=0.9, mode="eager")
    ema = copy.deepcopy(generator)
    for t in range(4):
        z = torch.randn(8, 4, device=device)
        stats = step(z)
        assert all(p.grad is None and p.requires_grad for p in critic.parameters())
        ref_opt.zero_grad()
        loss = reference.wgan_generator_loss(critic(ref_generator(z)))
        loss.backward(inputs=list(ref_generator.parameters()))
        ref_opt.step()
        decay = min(0.9, (1 + t) / (10 + t))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), ref_generator.parameters()):
                e.mul_(decay).add_(p, alpha=1 - decay)
        torch.testing.assert_close(stats["loss"], loss.detach())
    for p, p_ref in zip(generator.parameters(), ref_generator.parameters()):
        torch.testing.assert_close(p, p_ref, rtol=1e-6, atol=1e-8)
    for e, e_ref in zip(step.ema.parameters(), ema.parameters()):
        torch.testing.assert_close(e, e_ref, rtol=1e-5, atol=1e-7)


def _train(mode, kind, loss, penalty, channels_last=False, steps=10, lazy_every=1, dtype=torch.float32):
    critic, real, fake = _setup(kind, channels_last)
    critic, real, fake = critic.to(dtype), real.to(dtype), fake.to(dtype)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
    step = fastgan.CriticStep(
        critic, opt, loss=loss, penalty=penalty, penalty_weight=5.0, mode=mode, lazy_every=lazy_every
    )
    torch.manual_seed(1)
    for _ in range(steps):
        stats = step(real, fake)
    return [p.detach() for p in critic.parameters()], stats, step


def _assert_as_accurate(compiled, eager, exact):
    """Each compiled tensor within 1e-4 of eager's, or no further from the float64 run than 4x eager's own
    distance from it: Adam's first steps move every element by about the learning rate times its gradient's
    sign, so an element whose gradient is rounding noise moves a different way in any two fp32 computations
    (on a DCGAN critic, eager fp32 itself ends 3-10% from float64 on some tensors: benchmarks.parity)."""
    for p, e, x in zip(compiled, eager, exact):
        if _relative(p, e) > 1e-4:
            distance, eager_distance = float((p.double() - x).norm()), float((e.double() - x).norm())
            assert distance <= max(1e-4 * float(x.norm()), 4 * eager_distance)


@pytest.mark.parametrize(
    "kind,loss,penalty,channels_last,lazy",
    [
        ("mlp", "wgan", "gp", False, 1),
        ("conv", "ns", "r1", True, 2),
    ],
)
def test_compiled_step_trains_like_eager(kind, loss, penalty, channels_last, lazy):
    eager, eager_stats, _ = _train("eager", kind, loss, penalty, channels_last, lazy_every=lazy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no fallback
        compiled, compiled_stats, step = _train("compile", kind, loss, penalty, channels_last, lazy_every=lazy)
    assert step.mode == "compile"
    # Gradients agree to ~1e-7; Adam's per-element normalisation turns that into up to ~1e-4 on parameters
    # whose gradients are near zero.
    for p, p_ref in zip(compiled, eager):
        assert _relative(p, p_ref) < 1e-3
    _assert_as_accurate(
        compiled, eager, _train("eager", kind, loss, penalty, channels_last, lazy_every=lazy, dtype=torch.float64)[0]
    )
    for key, value in eager_stats.items():
        torch.testing.assert_close(compiled_stats[key], value, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("loss", [*REFERENCE_LOSSES])
@pytest.mark.parametrize("penalty", [*PENALTIES, None])
@pytest.mark.parametrize("kind,channels_last", [("mlp", False), ("conv", False), ("conv", True)])
def test_compiled_step_trains_like_eager_every_loss_and_penalty(kind, channels_last, loss, penalty):
    eager, _, _ = _train("eager", kind, loss, penalty, channels_last)
    compiled, _, step = _train("compile", kind, loss, penalty, channels_last)
    assert step.mode == "compile"
    for p, p_ref in zip(compiled, eager):
        assert _relative(p, p_ref) < 1e-3
    _assert_as_accurate(compiled, eager, _train("eager", kind, loss, penalty, channels_last, dtype=torch.float64)[0])


def test_compiled_gradients_that_differ_from_eager_fall_back(monkeypatch):
    critic, real, fake = _setup()
    opt = torch.optim.SGD(critic.parameters(), lr=0.1)
    step = fastgan.CriticStep(critic, opt, loss="wgan", penalty="gp", mode="compile")
    from fastgan.steps.compiled.step import Compiled

    def wrong(self, inputs):
        torch.rand(inputs[0].shape[0])  # draws alpha as the real one does
        return [torch.ones_like(p) for p in self.objective.state.params], {}

    monkeypatch.setattr(Compiled, "gradients", wrong)
    ref_critic, ref_opt = copy.deepcopy(critic), torch.optim.SGD
    ref_opt = ref_opt(ref_critic.parameters(), lr=0.1)
    torch.manual_seed(5)
    with pytest.warns(UserWarning, match="differs from eager"):
        step(real, fake)
    torch.manual_seed(5)
    _reference_step(ref_critic, ref_opt, real, fake, "wgan", "gp", 10.0)
    assert step.mode == "eager"
    for p, p_ref in zip(critic.parameters(), ref_critic.parameters()):
        torch.testing.assert_close(p, p_ref, rtol=1e-5, atol=1e-7)


def test_a_compiled_gradient_one_percent_off_falls_back_to_eager(monkeypatch):
    """The check's allowance for gradients that are zero in exact arithmetic must not hide a real error."""
    from fastgan.steps.compiled.step import Compiled

    critic, real, fake = _setup()
    step = fastgan.CriticStep(
        critic, torch.optim.SGD(critic.parameters(), lr=0.1), loss="wgan", penalty="gp", mode="compile"
    )
    compiled_gradients = Compiled.gradients

    def one_percent_off(self, inputs):
        grads, stats = compiled_gradients(self, inputs)
        return [grads[0] * 1.01, *grads[1:]], stats

    monkeypatch.setattr(Compiled, "gradients", one_percent_off)
    with pytest.warns(UserWarning, match="differs from eager"):
        step(real, fake)
    assert step.mode == "eager"


def test_a_bias_before_batchnorm_does_not_fail_the_compile_check():
    """Its gradient is zero in exact arithmetic: eager and compiled rounding noise differ, and that is no mismatch."""
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(4, 32), nn.BatchNorm1d(32), nn.LeakyReLU(0.2), nn.Linear(32, 6))
    critic = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))
    step = fastgan.GeneratorStep(
        generator, critic, torch.optim.Adam(generator.parameters()), loss="wgan", mode="compile"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        step(torch.randn(64, 4))
    assert step.mode == "compile"


def test_batchnorm_critic_with_a_penalty_runs_eager_with_a_warning():
    critic = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    step = fastgan.CriticStep(critic, torch.optim.Adam(critic.parameters()), loss="wgan", penalty="gp", mode="compile")
    with pytest.warns(UserWarning, match="BatchNorm"):
        step(torch.randn(4, 5), torch.randn(4, 5))
    assert step.mode == "eager"


def test_auto_mode_captures_on_one_gpu_and_compiles_elsewhere():
    """auto: compile on a CPU; on CUDA a captured graph where the optimizer can be made capturable and no process
    group is given, else compile (resolved without touching a GPU: only the device's type is read)."""
    from fastgan.steps import auto_mode

    cuda = torch.device("cuda")
    assert auto_mode(torch.device("cpu")) == "compile" and auto_mode(cuda) == "graph"
    assert auto_mode(cuda, process_group=object()) == "compile"
    # On a CPU a conv module's step is not shortened by compiling (benchmarks/RESULTS.md): eager.
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(16, 1))
    assert auto_mode(torch.device("cpu"), module=conv) == "eager" and auto_mode(cuda, module=conv) == "graph"
    assert auto_mode(torch.device("cpu"), module=nn.Linear(2, 1)) == "compile"
    conv_step = fastgan.CriticStep(conv, torch.optim.Adam(conv.parameters()), loss="wgan")
    assert conv_step.resolve_mode(torch.device("cpu")) == "eager"
    critic, real, fake = _setup()
    adam = torch.optim.Adam(critic.parameters())

    def resolve(step):
        return step.resolve_mode(cuda)

    assert resolve(fastgan.CriticStep(critic, adam, loss="wgan")) == "graph"
    assert all(g["capturable"] for g in adam.param_groups)
    sgd = torch.optim.SGD(critic.parameters(), lr=0.1)  # no capturable option
    assert resolve(fastgan.CriticStep(critic, sgd, loss="wgan")) == "compile"
    used = torch.optim.Adam(critic.parameters())  # state made without capturable: no error, compile
    fastgan.CriticStep(critic, used, loss="wgan", mode="eager")(real, fake)
    assert resolve(fastgan.CriticStep(critic, used, loss="wgan")) == "compile"
    assert not any(g["capturable"] for g in used.param_groups)
    # An fp16 GradScaler syncs in its step: never captured; auto then runs eager (compile cannot scale either).
    scaled = fastgan.CriticStep(critic, adam, loss="wgan", scaler=torch.amp.GradScaler("cpu"))
    with pytest.warns(UserWarning, match="GradScaler"):
        assert resolve(scaled) == "eager"
    scaled = fastgan.CriticStep(critic, adam, loss="wgan", scaler=torch.amp.GradScaler("cpu"), mode="graph")
    with pytest.raises(ValueError, match="GradScaler's step"):
        resolve(scaled)


def test_graph_mode_needs_cuda_tensors():
    critic, real, fake = _setup()
    step = fastgan.CriticStep(critic, torch.optim.Adam(critic.parameters()), loss="wgan", mode="graph")
    with pytest.raises(ValueError, match="mode='graph'"):
        step(real, fake)


@pytest.mark.parametrize(
    "kwargs,error,name",
    [
        (dict(loss="wasserstein"), ValueError, "loss"),
        (dict(loss="wgan", penalty="gp2"), ValueError, "penalty"),
        (dict(loss=None), ValueError, "penalty"),
        (dict(loss="wgan", mode="fast"), ValueError, "mode"),
        (dict(loss="wgan", penalty="r1", lazy_every=0), ValueError, "lazy_every"),
        (dict(loss="wgan", clip_value=-1.0), ValueError, "clip_value"),
        (dict(loss="wgan", scaler=object()), TypeError, "scaler"),
        (dict(loss="rpgan", penalty="r1-approx", penalty_sigma=0.0), ValueError, "penalty_sigma"),
    ],
)
def test_bad_step_arguments(kwargs, error, name):
    critic, _, _ = _setup()
    with pytest.raises(error, match=name):
        fastgan.CriticStep(critic, torch.optim.Adam(critic.parameters()), **kwargs)


@pytest.mark.parametrize(
    "loss,kwargs,match",
    [
        ("rpgan", {}, "needs the real batch"),
        ("ragan", dict(real=torch.ones(4, 20, dtype=torch.int64)), "real"),
        ("rpgan", dict(real=torch.randn(5, 20)), "paired"),
        ("wgan", dict(real=torch.randn(4, 20)), "relativistic"),
        ("ragan", dict(real=torch.randn(5, 20), labels=torch.zeros(4, dtype=torch.int64)), "real_labels"),
        ("ragan", dict(real=torch.randn(4, 20), real_labels=torch.zeros(4, dtype=torch.int64)), "needs labels"),
    ],
)
def test_relativistic_generator_steps_refuse_a_missing_or_wrong_real_batch_before_any_update(loss, kwargs, match):
    critic, _, _ = _setup()
    generator = torch.nn.Linear(3, 20)
    before = [p.detach().clone() for p in generator.parameters()]
    step = fastgan.GeneratorStep(generator, critic, torch.optim.Adam(generator.parameters()), loss=loss)
    with pytest.raises((ValueError, TypeError), match=match):
        step(torch.randn(4, 3), **kwargs)
    assert all(torch.equal(p, b) for p, b in zip(generator.parameters(), before))


def test_compiled_step_under_bfloat16_autocast():
    results = {}
    for mode in ("eager", "compile"):
        critic, real, fake = _setup()
        opt = torch.optim.Adam(critic.parameters(), lr=1e-3)
        step = fastgan.CriticStep(critic, opt, loss="wgan", penalty="gp", mode=mode)
        torch.manual_seed(1)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            for _ in range(5):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    stats = step(real, fake)
        assert step.mode == mode and stats["penalty"].dtype == torch.float32
        results[mode] = [p.detach() for p in critic.parameters()]
    for p, p_ref in zip(results["compile"], results["eager"]):
        assert _relative(p, p_ref) < 1e-3


def _first_mismatch_case(eager_noise, compiled_noise):
    torch.manual_seed(0)
    reference = torch.randn(50, dtype=torch.float64)
    direction = torch.randn(50, dtype=torch.float64)
    direction /= direction.norm()
    eager = (reference + eager_noise * reference.norm() * direction).float()
    compiled = (reference - compiled_noise * reference.norm() * direction).float()
    from fastgan.steps.compiled.check import first_mismatch

    return first_mismatch(["w"], [compiled], [eager], 1e-3, [reference])


def test_compile_check_lets_float64_judge_gradients_that_cancel():
    """Eager 1% off (rounding in a cancelling sum): compiled 1.5% off the other way is as accurate; 5% is not."""
    from fastgan.steps.compiled.check import first_mismatch

    assert _first_mismatch_case(0.01, 0.015) is None
    assert "differs from eager" in _first_mismatch_case(0.01, 0.05)
    assert "differs from eager" in _first_mismatch_case(1e-7, 0.01)
    torch.manual_seed(0)
    e = torch.randn(50)
    assert "differs from eager" in first_mismatch(["w"], [e * 1.01], [e], 1e-3)  # no reference: eager judges


def test_a_critic_whose_loss_gradients_cancel_stays_compiled(monkeypatch):
    """Real and fake 1e-4 apart: WGAN's loss gradient is a difference of nearly equal terms, whose fp32 rounding
    differs between eager and compiled by more than 1e-3 relative with torch 2.14 on x86 (torch 2.11 on the H100
    machine's CPU rounds both alike); where it does, float64 is asked and finds both as accurate."""
    from fastgan.steps.compiled import check as compile_check
    from fastgan.steps.compiled.step import Compiled

    judged, flagged = [], []
    float64_gradients, first_mismatch = Compiled.float64_gradients, compile_check.first_mismatch
    monkeypatch.setattr(
        Compiled, "float64_gradients", lambda self, *args: judged.append(1) or float64_gradients(self, *args)
    )
    monkeypatch.setattr(
        compile_check,
        "first_mismatch",
        lambda *args: flagged.append(first_mismatch(*args) is not None and len(args) == 4) or first_mismatch(*args),
    )
    torch.manual_seed(0)
    critic = ConvCritic()
    real = torch.randn(6, 3, 16, 16)
    fake = real + 1e-4 * torch.randn_like(real)
    critic(real)
    step = fastgan.CriticStep(critic, torch.optim.SGD(critic.parameters(), lr=0.1), loss="wgan", mode="compile")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        step(real, fake)
    assert step.mode == "compile"
    assert bool(judged) == flagged[0]  # the plain comparison's mismatch, and only that, asks float64


OPTIMIZERS = {
    "adam amsgrad weight decay": lambda p, lr: torch.optim.Adam(
        p, lr=lr, betas=(0.5, 0.9), amsgrad=True, weight_decay=0.01
    ),
    "adamw": lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.05),
    "adam two groups": lambda p, lr: torch.optim.Adam([{"params": p[:2], "lr": 10 * lr}, {"params": p[2:]}], lr=lr),
    "rmsprop centered momentum": lambda p, lr: torch.optim.RMSprop(p, lr=lr, momentum=0.9, centered=True),
    "rmsprop tensor lr": lambda p, lr: torch.optim.RMSprop(p, lr=torch.tensor(lr)),
    "sgd momentum": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),  # no update in the graph: two calls
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_in_graph_update_is_the_optimizers_step(name):
    """The compiled update against ``optimizer.step()`` on the same gradients, over steps whose learning rate
    changes, then after ``load_state_dict``: to fp32 rounding (the compiled bias corrections are fp32)."""
    from fastgan.steps.compiled.optimizer_update import in_graph_update

    torch.manual_seed(0)
    params = [
        torch.randn(5, 3, requires_grad=True),
        torch.randn(5, requires_grad=True),
        torch.randn(1, 5, requires_grad=True),
    ]
    ref_params = [p.detach().clone().requires_grad_() for p in params]
    opt, ref_opt = OPTIMIZERS[name](params, 1e-3), OPTIMIZERS[name](ref_params, 1e-3)
    grads = [[torch.randn_like(p) for p in params] for _ in range(8)]
    for optimizer, ps in ((opt, params), (ref_opt, ref_params)):  # the first step creates the state
        for p, g in zip(ps, grads[0]):
            p.grad = g.clone()
        optimizer.step()
    update = in_graph_update(opt, params)
    if name.startswith("sgd"):
        assert update is None
        return

    @torch.compile(fullgraph=True)
    def compiled(views, gs):
        with torch.no_grad():
            update(views, gs)

    views = [p.detach() for p in params]
    saved, ref_saved = copy.deepcopy(opt.state_dict()), copy.deepcopy(ref_opt.state_dict())
    for k, gs in enumerate(grads[1:], start=1):
        if k == 4:
            for o in (opt, ref_opt):
                lr = o.param_groups[-1]["lr"]
                o.param_groups[-1]["lr"] = lr.fill_(3e-3) if torch.is_tensor(lr) else 3e-3
        if k == 6:
            opt.load_state_dict(saved)
            ref_opt.load_state_dict(ref_saved)
        compiled(views, gs)
        for p, g in zip(ref_params, gs):
            p.grad = g.clone()
        ref_opt.step()
        for p, p_ref in zip(params, ref_params):
            torch.testing.assert_close(p.detach(), p_ref.detach(), rtol=1e-5, atol=1e-6)
    for p, p_ref in zip(params, ref_params):
        for key, value in ref_opt.state[p_ref].items():
            torch.testing.assert_close(opt.state[p][key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_compiled_step_trains_like_eager_with_each_optimizer(name):
    """From the second call the update of Adam, AdamW and RMSprop runs in the compiled graph (no gradients left
    behind); parameters after 10 steps equal eager's (to 1e-3: Adam's per-element normalisation amplifies
    gradient rounding on near-zero elements)."""
    trained = {}
    for mode in ("eager", "compile"):
        critic, real, fake = _setup()
        step = fastgan.CriticStep(
            critic, OPTIMIZERS[name](list(critic.parameters()), 1e-4), loss="wgan", penalty="gp", mode=mode
        )
        torch.manual_seed(1)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            for _ in range(10):
                step(real, fake)
        assert step.mode == mode
        trained[mode] = critic
    in_graph = not name.startswith("sgd")
    assert all((p.grad is None) == in_graph for p in trained["compile"].parameters())
    for p, p_ref in zip(trained["compile"].parameters(), trained["eager"].parameters()):
        assert _relative(p.detach(), p_ref.detach()) < 1e-3


@pytest.mark.parametrize("tensor_lr", [False, True])
def test_compiled_update_reads_the_learning_rate_at_each_call(tensor_lr):
    critic, real, fake = _setup()
    opt = torch.optim.Adam(critic.parameters(), lr=torch.tensor(1e-3) if tensor_lr else 1e-3)
    step = fastgan.CriticStep(critic, opt, loss="wgan", penalty="gp", mode="compile")
    for _ in range(3):
        step(real, fake)
    if tensor_lr:
        opt.param_groups[0]["lr"].fill_(0.0)
    else:
        opt.param_groups[0]["lr"] = 0.0
    before = [p.detach().clone() for p in critic.parameters()]
    step(real, fake)
    assert step.mode == "compile"
    for p, p_before in zip(critic.parameters(), before):
        assert torch.equal(p.detach(), p_before)


def test_compiled_update_follows_a_loaded_optimizer_state():
    """load_state_dict replaces the state tensors: the compiled update must move the new ones, as eager does."""
    trained = []
    for mode in ("eager", "compile"):
        critic, real, fake = _setup()
        opt = torch.optim.Adam(critic.parameters(), lr=1e-4)
        step = fastgan.CriticStep(critic, opt, loss="wgan", penalty="gp", mode=mode)
        torch.manual_seed(1)
        for _ in range(3):
            step(real, fake)
        saved = copy.deepcopy(opt.state_dict())
        for _ in range(3):
            step(real, fake)
        opt.load_state_dict(saved)
        for _ in range(2):
            step(real, fake)
        assert step.mode == mode
        trained.append((list(critic.parameters()), opt))
    (params, opt), (ref_params, ref_opt) = trained[1], trained[0]
    for p, p_ref in zip(params, ref_params):
        assert float(opt.state[p]["step"]) == float(ref_opt.state[p_ref]["step"]) == 5
        assert _relative(opt.state[p]["exp_avg"], ref_opt.state[p_ref]["exp_avg"]) < 1e-3
        assert _relative(p.detach(), p_ref.detach()) < 1e-3


def test_nan_in_real_samples_reaches_the_parameters_of_a_compiled_r1_step():
    """R1 alone: the input gradient's norm can stay finite with a NaN sample (ReLU masks it), so the NaN reaches
    the parameters only through the zero products the compiled graph folds; it must still reach them."""
    for mode in ("eager", "compile"):
        critic, real, fake = _setup()
        step = fastgan.CriticStep(
            critic, torch.optim.SGD(critic.parameters(), lr=0.1), loss=None, penalty="r1", mode=mode
        )
        step(real, fake)
        bad = real.clone()
        bad[2, 5] = float("nan")
        step(bad, fake)
        assert any(p.isnan().any() for p in critic.parameters()), mode


def test_more_steps_in_one_process_than_dynamos_recompile_limit_stay_compiled():
    """Dynamo keeps at most 8 graphs per code object: each step must compile into its own."""
    for seed in range(9):
        critic, real, fake = _setup(seed=seed)
        step = fastgan.CriticStep(
            critic, torch.optim.Adam(critic.parameters()), loss="wgan", penalty="gp", mode="compile"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            for _ in range(2):
                step(real, fake)
        assert step.mode == "compile"


def test_compile_graph_mode_replays_the_compiled_step_with_its_update(monkeypatch):
    """compile+graph on a CPU, with a stand-in for the CUDA capture (its "graph" runs the captured body on the
    static inputs at each replay, as a replay does; the GPU tests capture for real): the first call is checked,
    the second builds the update in the graph, the third warms up and captures, and the replays from then on
    train as compile mode does."""
    replays = stand_in_capture(monkeypatch)
    from models import tiny_mlp_gan

    ends = {}
    for mode in ("compile", "compile+graph"):
        critic, generator = tiny_mlp_gan("cpu")
        critic_step = fastgan.CriticStep(
            critic, torch.optim.Adam(critic.parameters(), lr=1e-2), loss="wgan", penalty="gp", mode="compile"
        )
        generator_step = fastgan.GeneratorStep(
            generator, critic, torch.optim.Adam(generator.parameters(), lr=1e-2), loss="wgan", ema=0.9, mode="compile"
        )
        critic_step._main.mode = generator_step._runner.mode = mode  # past the CUDA check: the capture is a stand-in
        torch.manual_seed(1)
        data = torch.Generator().manual_seed(2)
        history = []
        for _ in range(6):
            real, noise = torch.randn(8, 12, generator=data), torch.randn(8, 4, generator=data)
            stats = critic_step(real, generator(noise).detach())
            history.append({**stats, "g": generator_step(noise)["loss"]})
        assert critic_step.mode == generator_step.mode == mode
        modules = (critic, generator, generator_step.ema)
        ends[mode] = ([p.detach().clone() for m in modules for p in m.parameters()], history)
    assert len(replays) == 2 * 3  # each step: calls 4, 5 and 6 replayed
    # The same compiled code on the same inputs: bitwise compile mode's (eager's rounding would differ).
    assert all(torch.equal(p, q) for p, q in zip(ends["compile+graph"][0], ends["compile"][0]))
    for got, expected in zip(ends["compile+graph"][1], ends["compile"][1]):
        assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_compile_graph_mode_needs_cuda_tensors():
    critic, real, fake = _setup()
    step = fastgan.CriticStep(critic, torch.optim.Adam(critic.parameters()), loss="wgan", mode="compile+graph")
    with pytest.raises(ValueError, match="mode='compile\\+graph' captures CUDA graphs"):
        step(real, fake)

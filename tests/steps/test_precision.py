"""``precision="bf16"``: the networks under bf16 autocast, everything else in fp32, in every mode on the CPU.

The bf16 steps are held to float64 by the bf16 reference's own distance (the plain step under bf16 autocast, as
a user writes it; a statistic, one rounded number that the reference may round luckily, also within bf16's
rounding of it and of the scores it is computed from, about 0.1 in size here), in every mode, which must also end
elsewhere than the fp32 step does.
"""

import warnings

import pytest
import torch
import zoo
from test_zoo import STEPS, _optimizer, assert_like_reference, train_critic
from torch import nn

import fastgan

BF16_EPS = torch.finfo(torch.bfloat16).eps
SCORES = 0.1  # the size of the zoo critics' scores at these steps: a statistic's rounding scale


@pytest.mark.parametrize(
    "name,loss,penalty",
    [
        ("sn conv (parametrizations)", "wgan", "gp"),
        ("projection (conditional)", "hinge", "r1"),
        ("dropout", "ns", "dragan"),
    ],
)
def test_bf16_eager_steps_are_as_accurate_as_the_plain_bf16_step(name, loss, penalty):
    got, got_stats, _ = train_critic(name, loss, penalty, "eager", precision="bf16")
    ref16, stats16, _ = train_critic(name, loss, penalty, precision="bf16")
    ref64, stats64, _ = train_critic(name, loss, penalty, dtype=torch.float64)
    assert_like_reference(got, ref16, ref64, f"{name}, bf16 eager")
    assert_like_reference(got_stats, stats16, stats64, f"{name}, bf16 eager", BF16_EPS, BF16_EPS * SCORES)


@pytest.mark.parametrize(
    "name,loss,penalty",
    [("minibatch stddev", "wgan", "gp"), ("dropout", "wgan", "dragan"), ("sn mlp (old api)", "lsgan", "r1")],
)
def test_compiled_bf16_steps_are_as_accurate_as_the_plain_bf16_step(name, loss, penalty):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no fallback to eager
        got, got_stats, step = train_critic(name, loss, penalty, "compile", precision="bf16")
        fp32, _, _ = train_critic(name, loss, penalty, "compile")
    assert step.mode == "compile"
    ref16, stats16, _ = train_critic(name, loss, penalty, precision="bf16")
    ref64, stats64, _ = train_critic(name, loss, penalty, dtype=torch.float64)
    assert_like_reference(got, ref16, ref64, f"{name}, bf16 compile")
    assert_like_reference(got_stats, stats16, stats64, f"{name}, bf16 compile", BF16_EPS, BF16_EPS * SCORES)
    # bf16 is in the compiled graph: the compiled fp32 step ends elsewhere.
    assert any(not torch.equal(got[k], fp32[k]) for k in got)


class DtypeSpy(nn.Module):
    """An MLP that records the dtype its hidden layer computes in."""

    def __init__(self, d_in):
        super().__init__()
        self.hidden, self.out = nn.Linear(d_in, 16), nn.Linear(16, 1)
        self.seen = []

    def forward(self, x):
        h = self.hidden(x)
        self.seen.append(h.dtype)
        return self.out(torch.tanh(h))


class GeneratorSpy(nn.Module):
    """A generator with BatchNorm that records the dtype its first layer computes in."""

    def __init__(self, d_out):
        super().__init__()
        self.first = nn.Linear(zoo.LATENT, 16)
        self.rest = nn.Sequential(nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, d_out))
        self.seen = []

    def forward(self, z):
        h = self.first(z)
        self.seen.append(h.dtype)
        return self.rest(h)


@pytest.mark.parametrize("mode", ["eager", "compile"])
def test_bf16_runs_every_critic_call_in_bf16_and_keeps_parameters_state_and_statistics_fp32(mode):
    torch.manual_seed(0)
    critic = DtypeSpy(6)
    opt = _optimizer(critic)
    step = fastgan.CriticStep(critic, opt, loss="wgan", penalty="gp", mode=mode, precision="bf16")
    step(torch.randn(8, 6), torch.randn(8, 6))  # compile: the checked first call runs the eager step too
    for _ in range(STEPS):
        critic.seen.clear()
        stats = step(torch.randn(8, 6), torch.randn(8, 6))
        assert critic.seen == [torch.bfloat16] * 3  # real, fake, the penalty's points
    assert all(p.dtype == torch.float32 for p in critic.parameters())
    assert all(v.dtype == torch.float32 for s in opt.state.values() for k, v in s.items() if k != "step")
    assert all(v.dtype == torch.float32 for v in stats.values())
    assert step.mode == mode


@pytest.mark.parametrize("mode", ["eager", "compile"])
def test_bf16_generator_steps_run_both_networks_in_bf16_and_follow_the_plain_bf16_step(mode):
    def train(step_mode, precision, dtype=torch.float32):
        torch.manual_seed(0)
        generator, critic = GeneratorSpy(6).to(dtype), DtypeSpy(6).to(dtype)
        opt = _optimizer(generator)
        step = (
            fastgan.GeneratorStep(generator, critic, opt, loss="ns", mode=step_mode, precision=precision)
            if step_mode
            else None
        )
        losses = []
        for t in range(STEPS):
            noise = torch.randn(8, zoo.LATENT, generator=torch.Generator().manual_seed(t)).to(dtype)
            if step is not None:
                losses.append(float(step(noise)["loss"]))
                continue
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                losses.append(zoo.reference_generator_step(generator, critic, opt, noise, "ns")["loss"])
        return {k: v.detach().clone() for k, v in generator.state_dict().items()}, losses, (generator, critic)

    got, got_losses, spies = train(mode, "bf16")
    for spy in spies:
        assert len(spy.seen) >= STEPS and set(spy.seen) == {torch.bfloat16}
    ref16, losses16, _ = train(None, "bf16")
    ref64, losses64, _ = train(None, "fp32", torch.float64)
    assert_like_reference(got, ref16, ref64, f"generator, bf16 {mode}")
    for g, r16, r64 in zip(got_losses, losses16, losses64):
        assert abs(g - r64) <= 4 * abs(r16 - r64) + BF16_EPS * (abs(r64) + 1e-3)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(precision="fp16"), ValueError, "precision"),
        (dict(precision=torch.bfloat16), ValueError, "precision"),
        (dict(precision="bf16", scaler=torch.amp.GradScaler("cpu")), ValueError, "scaler"),
    ],
)
def test_bad_precision_is_refused(kwargs, error, match):
    critic = DtypeSpy(6)
    with pytest.raises(error, match=match):
        fastgan.CriticStep(critic, _optimizer(critic), loss="wgan", **kwargs)


def test_bad_generator_precision_is_refused():
    generator, critic = zoo.BatchNormGenerator(out=6), DtypeSpy(6)
    with pytest.raises(ValueError, match="precision"):
        fastgan.GeneratorStep(generator, critic, _optimizer(generator), loss="wgan", precision="half")


class _WeightCasts(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the casts of ``params`` to bf16 that run under it."""

    def __init__(self, params):
        super().__init__()
        self.addresses, self.casts = {p.data_ptr() for p in params}, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default and kwargs.get("dtype") == torch.bfloat16:
            self.casts += args[0].data_ptr() in self.addresses
        return func(*args, **kwargs)


@pytest.mark.parametrize("penalty", ["gp", "r1+r2"])
def test_a_bf16_eager_step_casts_each_weight_once(penalty):
    """The critic is called several times a step (real and fake, the penalty's points): each call casting the
    weights again would cost a launch per weight and call each way on a GPU. Once per weight and step."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(6, 8), nn.LeakyReLU(0.2), nn.Linear(8, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    params = list(critic.parameters())
    step = fastgan.CriticStep(
        critic, _optimizer(critic), loss="wgan", penalty=penalty, penalty_weight=1.0, mode="eager", precision="bf16"
    )
    real, fake = torch.randn(5, 6), torch.randn(5, 6)
    for _ in range(2):
        with _WeightCasts(params) as spy:
            step(real, fake)
        assert spy.casts == len(params)

"""What the steps do with the modules between and around calls: tensors replaced, flags changed, parameters the
optimizer lacks, bad critic outputs and labels refused before anything changes. Each case in eager and compile
mode against the same calls written plainly (tests/zoo.py's reference steps)."""

import warnings

import pytest
import torch
import zoo
from torch import nn

import fastgan

MODES = ["eager", "compile"]


def _batch(t, n=8):
    g = torch.Generator().manual_seed(t)
    return (
        torch.randn(n, 12, generator=g),
        torch.randn(n, 12, generator=g),
        torch.randint(zoo.CLASSES, (n,), generator=g),
    )


def _run(mode, build, between, steps=4, loss="wgan", penalty="gp"):
    """``steps`` critic updates (fastgan in ``mode``, or the plain reference for None), calling
    ``between(critic, t)`` before each; returns the critic's state dict."""
    torch.manual_seed(0)
    critic = build()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2, betas=(0.5, 0.9))
    step = fastgan.CriticStep(critic, opt, loss=loss, penalty=penalty, penalty_weight=2.0, mode=mode) if mode else None
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for t in range(steps):
            real, fake, _ = _batch(t)
            between(critic, t)
            torch.manual_seed(100 + t)
            if step is not None:
                step(real, fake)
            else:
                zoo.reference_critic_step(critic, opt, real, fake, loss, penalty, 2.0)
    if step is not None:
        assert step.mode == mode
    return {k: v.detach().clone() for k, v in critic.state_dict().items()}


def _assert_close(got, expected):
    assert got.keys() == expected.keys()
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-4, atol=1e-6, msg=k)


def _replace_labels(critic, t):
    critic.labels = _batch(t)[2]  # a new tensor: the module's buffer replaced


def _switch_mode(critic, t):
    critic.train(t % 2 == 0)  # dropout on, off, on, off


def _swap_data(critic, t):
    if t == 2:
        with torch.no_grad():
            first = critic.net[0]
            first.weight.data = first.weight.data * 0.5 + 0.1  # new storage under the same Parameter


def _freeze_first_layer(critic, t):
    if t == 2:
        critic.net[0].requires_grad_(False)


CHANGES = {  # what changes between calls: (critic, the change, penalty)
    "a buffer replaced": (zoo.LabelBufferCritic, _replace_labels, "gp"),
    "train and eval switched": (zoo.DropoutCritic, _switch_mode, "dragan"),
    "parameter data assigned": (zoo.DropoutCritic, _swap_data, "r1"),
    "a layer frozen": (zoo.DropoutCritic, _freeze_first_layer, "gp"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("change", CHANGES)
def test_modules_changed_between_calls_are_followed(change, mode):
    build, between, penalty = CHANGES[change]
    expected = _run(None, build, between, penalty=penalty)
    _assert_close(_run(mode, build, between, penalty=penalty), expected)


def test_parameters_replaced_by_load_state_dict_assign_are_refused_before_anything_runs():
    for mode in MODES:
        critic = zoo.SNMLPCritic()
        step = fastgan.CriticStep(critic, torch.optim.Adam(critic.parameters()), loss="wgan", penalty="gp", mode=mode)
        real, fake, _ = _batch(0)
        step(real, fake)
        critic.load_state_dict({k: v.clone() for k, v in critic.state_dict().items()}, assign=True)
        before = {k: v.clone() for k, v in critic.state_dict().items()}
        rng = torch.get_rng_state()
        with pytest.raises(ValueError, match=r"critic parameter\(s\) 'net.0.bias'.*optimizer does not hold"):
            step(real, fake)
        assert torch.equal(torch.get_rng_state(), rng)
        for k, v in critic.state_dict().items():
            assert torch.equal(v, before[k]), (mode, k)


class MeanCritic(nn.Module):
    """A spectral-norm critic returning what a penalty must refuse: a scalar or several scores per sample."""

    def __init__(self, out):
        super().__init__()
        self.out = out
        self.net = nn.Sequential(zoo.sn(nn.Linear(12, 8)), nn.ReLU(), zoo.sn(nn.Linear(8, 2)))

    def forward(self, x):
        scores = self.net(x)
        return {"scalar": scores.mean(), "two per sample": scores, "one short": scores[1:, :1]}[self.out]


@pytest.mark.parametrize("out", ["scalar", "two per sample", "one short"])
@pytest.mark.parametrize("mode", MODES)
def test_a_critic_without_one_score_per_sample_is_refused_and_nothing_changes(mode, out):
    critic = MeanCritic(out)
    before = {k: v.clone() for k, v in critic.state_dict().items()}
    step = fastgan.CriticStep(critic, torch.optim.Adam(critic.parameters()), loss="wgan", penalty="gp", mode=mode)
    real, fake, _ = _batch(0)
    rng = torch.get_rng_state()
    with pytest.raises(ValueError, match="one score per sample"):
        step(real, fake)
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in critic.state_dict().items():
        assert torch.equal(v, before[k]), k  # spectral norm's u and v included
    generator = nn.Linear(zoo.LATENT, 12)
    generator_step = fastgan.GeneratorStep(
        generator, critic, torch.optim.Adam(generator.parameters()), loss="wgan", mode=mode
    )
    with pytest.raises(ValueError, match="one score per sample"):
        generator_step(torch.randn(8, zoo.LATENT))


@pytest.mark.parametrize(
    "penalty",
    [
        lambda D, real, fake: fastgan.gradient_penalty(D, real, fake),
        lambda D, real, fake: fastgan.compute_gradient_penalty(D, real, fake),
        lambda D, real, fake: fastgan.r1_penalty(D, real),
        lambda D, real, fake: fastgan.r2_penalty(D, fake),
        lambda D, real, fake: fastgan.dragan_penalty(D, real),
        lambda D, real, fake: fastgan.zero_centered_gradient_penalty(D, real, fake),
    ],
)
def test_the_penalties_refuse_a_critic_without_one_score_per_sample(penalty):
    critic = nn.Linear(12, 2)
    real, fake, _ = _batch(0)
    for bad in (lambda x: critic(x).mean(), lambda x: critic(x), lambda x: critic(x)[:, :1].reshape(1, -1)):
        with pytest.raises(ValueError, match="one score per sample"):
            penalty(bad, real, fake)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda step, r, f, y: step(r, f, labels=y[:4]), ValueError, "labels must hold one label per sample"),
        (lambda step, r, f, y: step(r, f, labels=y.tolist()), TypeError, "labels must be a torch.Tensor"),
        (lambda step, r, f, y: step(r, f, fake_labels=y), ValueError, "fake_labels needs labels"),
        (lambda step, r, f, y: step(r, f, labels=y, fake_labels=y[:3]), ValueError, "fake_labels must hold"),
    ],
)
def test_bad_labels_are_refused(call, error, match):
    critic = zoo.ProjectionCritic()
    step = fastgan.CriticStep(critic, torch.optim.Adam(critic.parameters()), loss="hinge", mode="eager")
    real, fake, y = _batch(0)
    with pytest.raises(error, match=match):
        call(step, real, fake, y)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(loss="wgan", penalty="gp", penalty_weight=-1.0), ValueError, "penalty_weight must be > 0"),
        (dict(loss="wgan", penalty="gp", penalty_weight=float("inf")), ValueError, "penalty_weight must be finite"),
        (dict(loss="lsgan", lsgan_targets=(0, 1)), ValueError, "lsgan_targets must be three numbers"),
        (dict(loss="wgan", label_smoothing=0.1), ValueError, "label_smoothing applies to the ns loss only"),
        (dict(loss="ns", label_smoothing=1.0), ValueError, r"label_smoothing must be in \[0, 1\)"),
        (dict(loss="wgan", clip_value=0.0), ValueError, "clip_value must be > 0"),
        (dict(loss="wgan", joint_pass="yes"), TypeError, "joint_pass must be a bool"),
    ],
)
def test_bad_critic_step_options_are_refused(kwargs, error, match):
    critic = zoo.SNMLPCritic()
    with pytest.raises(error, match=match):
        fastgan.CriticStep(critic, torch.optim.Adam(critic.parameters()), **kwargs)


def test_a_parameter_left_out_of_the_optimizer_is_named():
    critic = zoo.DropoutCritic()
    opt = torch.optim.Adam(critic.net[3].parameters())
    with pytest.raises(ValueError, match=r"'net.0.weight', 'net.0.bias', 'net.6.weight'.*requires_grad_\(False\)"):
        fastgan.CriticStep(critic, opt, loss="wgan")
    critic.net[0].requires_grad_(False)
    critic.net[6].requires_grad_(False)
    fastgan.CriticStep(critic, opt, loss="wgan")  # frozen ones need not be held


def test_a_compiled_step_that_fails_its_check_undoes_its_buffer_updates(monkeypatch):
    """The compiled gradients run (and advance spectral norm's u and v) before the check finds them 1% off: the
    eager step that replaces them starts from the buffers as they were, so the run is eager's exactly."""
    from fastgan.steps.compiled.step import Compiled

    compiled_gradients = Compiled.gradients

    def one_percent_off(self, inputs):
        grads, stats = compiled_gradients(self, inputs)
        return [grads[0] * 1.01, *grads[1:]], stats

    expected = _run("eager", zoo.SNMLPCritic, lambda critic, t: None, steps=2)
    monkeypatch.setattr(Compiled, "gradients", one_percent_off)
    torch.manual_seed(0)
    critic = zoo.SNMLPCritic()
    step = fastgan.CriticStep(
        critic,
        torch.optim.Adam(critic.parameters(), lr=1e-2, betas=(0.5, 0.9)),
        loss="wgan",
        penalty="gp",
        penalty_weight=2.0,
        mode="compile",
    )
    for t in range(2):
        real, fake, _ = _batch(t)
        torch.manual_seed(100 + t)
        with pytest.warns(UserWarning, match="differs from eager") if t == 0 else warnings.catch_warnings():
            step(real, fake)
    assert step.mode == "eager"
    for k, v in critic.state_dict().items():
        assert torch.equal(v, expected[k]), k

"""What users' modules and optimizers do to a step between and during calls, in every mode: a module compile
cannot trace, an error of the user's own module on a later call, parameters moved between optimizer groups,
groups added, parameters removed. Graph modes run on the CPU with a stand-in capture (helpers.stand_in_capture);
tests/gpu captures for real."""

import inspect
import warnings

import pytest
import torch
import zoo
from helpers import stand_in_capture
from torch import nn

import fastgan
from fastgan.steps.runner import Runner

MODES = ["eager", "compile", "graph", "compile+graph"]


def _resolved_as(monkeypatch, mode):
    if mode in ("graph", "compile+graph"):
        stand_in_capture(monkeypatch)
        monkeypatch.setattr(Runner, "resolve_mode", lambda self, device: mode)


class BranchingCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(12, 1)

    def forward(self, x):
        h = self.net(x)
        if h.mean() > 0:  # data-dependent control flow: Dynamo cannot trace it whole
            h = h * 2
        return h


def test_a_compile_failure_names_the_module_and_the_line_that_stopped_it_once():
    critic = BranchingCritic()
    step = fastgan.CriticStep(critic, torch.optim.Adam(critic.parameters()), loss="wgan", penalty="gp", mode="compile")
    with pytest.warns(UserWarning) as caught:
        for _ in range(3):
            step(torch.randn(8, 12), torch.randn(8, 12))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    line = inspect.getsourcelines(BranchingCritic.forward)[1] + 2
    assert "critic (BranchingCritic)" in messages[0] and "Data-dependent branching" in messages[0]
    assert f"{__file__}:{line} in forward (`if h.mean() > 0:" in messages[0]
    assert step.mode == "eager"
    assert caught[0].filename == __file__  # the warning points at the user's call, not at fastgan's code


@pytest.mark.parametrize("mode", ["compile", "graph", "compile+graph"])
def test_a_fallback_warning_points_at_the_users_call_whatever_the_mode(mode, monkeypatch):
    """A forward that changes a Python attribute: each mode's strategy falls back from its own depth of
    fastgan's code, and the warning names the line of the user's call every time."""
    _resolved_as(monkeypatch, mode)
    torch.manual_seed(0)
    critic = zoo.CountingCritic()
    step = fastgan.CriticStep(critic, torch.optim.Adam(critic.parameters()), loss="wgan", mode=mode)
    real, fake = torch.randn(8, 12), torch.randn(8, 12)
    with pytest.warns(UserWarning, match="in forward") as caught:
        for _ in range(3):
            line = inspect.currentframe().f_lineno + 1
            step(real, fake)
    assert step.mode == "eager"
    assert [(w.filename, w.lineno) for w in caught if "in forward" in str(w.message)] == [(__file__, line)]


@pytest.mark.parametrize("mode", MODES)
def test_an_error_of_the_users_module_on_a_later_call_is_raised_as_itself_and_keeps_the_mode(mode, monkeypatch):
    """Labels out of range for the critic's nn.Embedding on the third call: eager's IndexError, whatever the
    mode, and the mode stays as it was for the next calls."""
    _resolved_as(monkeypatch, mode)
    torch.manual_seed(0)
    critic = zoo.ProjectionCritic()
    step = fastgan.CriticStep(critic, torch.optim.Adam(critic.parameters()), loss="hinge", penalty="gp", mode=mode)
    labels = torch.randint(zoo.CLASSES, (8,))
    bad = labels.clone()
    bad[3] = zoo.CLASSES
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for call in range(5):
            real, fake = torch.randn(8, 12), torch.randn(8, 12)
            if call == 2:
                with pytest.raises(IndexError, match="index out of range"):
                    step(real, fake, labels=bad)
            else:
                step(real, fake, labels=labels)
    assert step.mode == mode


def _small_critic():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))


def _batches(n):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 12, generator=g), torch.randn(8, 12, generator=g)) for _ in range(n)]


def _train(mode, change, monkeypatch, calls=5):
    """``calls`` critic steps in ``mode``, ``change(critic, optimizer)`` applied after the second (compile mode
    has built its update with the optimizer's, graph mode captured its step)."""
    _resolved_as(monkeypatch, mode)
    critic = _small_critic()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    step = fastgan.CriticStep(critic, opt, loss="wgan", penalty="gp", mode=mode)
    after = None
    for t, (real, fake) in enumerate(_batches(calls)):
        torch.manual_seed(100 + t)
        step(real, fake)
        if t == 1:
            change(critic, opt)
            after = {n: p.detach().clone() for n, p in critic.named_parameters()}
    assert step.mode == mode
    return critic, after


def _move_last_layer_to_a_group_with_lr_0(critic, opt):
    moved = {id(p) for p in critic[2].parameters()}
    opt.param_groups[0]["params"] = [p for p in opt.param_groups[0]["params"] if id(p) not in moved]
    opt.add_param_group({"params": list(critic[2].parameters()), "lr": 0.0})


def _add_a_group_for_the_last_layer(critic, opt):
    """The last layer trained apart with its own (smaller) learning rate: a new group, as fine-tuning code does."""
    moved = {id(p) for p in critic[2].parameters()}
    opt.param_groups[0]["params"] = [p for p in opt.param_groups[0]["params"] if id(p) not in moved]
    opt.add_param_group({"params": list(critic[2].parameters()), "lr": 1e-3})


@pytest.mark.parametrize("change", [_move_last_layer_to_a_group_with_lr_0, _add_a_group_for_the_last_layer])
@pytest.mark.parametrize("mode", MODES[1:])
def test_parameter_groups_changed_between_calls_are_followed_as_eager_follows_them(mode, change, monkeypatch):
    eager, eager_after = _train("eager", change, monkeypatch)
    got, after = _train(mode, change, monkeypatch)
    for (name, p), q in zip(got.named_parameters(), eager.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6), (mode, name)
    if change is _move_last_layer_to_a_group_with_lr_0:
        for name, p in got[2].named_parameters():
            assert torch.equal(p, after[f"2.{name}"]), (mode, name)


@pytest.mark.parametrize("mode", MODES)
def test_parameters_removed_from_the_optimizer_are_refused_by_name(mode, monkeypatch):
    _resolved_as(monkeypatch, mode)
    critic = _small_critic()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    step = fastgan.CriticStep(critic, opt, loss="wgan", penalty="gp", mode=mode)
    for real, fake in _batches(2):
        step(real, fake)
    opt.param_groups[0]["params"] = opt.param_groups[0]["params"][:-1]
    before = [p.detach().clone() for p in critic.parameters()]
    with pytest.raises(ValueError, match="critic parameter\\(s\\) '2.bias' require grad but the optimizer does not"):
        step(real, fake)
    assert all(torch.equal(p, q) for p, q in zip(critic.parameters(), before))


class _Scored(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 1))
        self.last, self.stats, self.tag = None, {"n": 0}, "a"


class KeepsItsScores(_Scored):
    def forward(self, x):
        out = self.net(x)
        self.last = out.detach()
        return out


class CountsInADict(_Scored):
    def forward(self, x):
        self.stats["n"] += 1
        return self.net(x)


class RegistersABuffer(_Scored):
    def forward(self, x):
        if not hasattr(self, "first_mean"):
            self.register_buffer("first_mean", x.mean(0).detach())
        return self.net(x)


class FlipsATag(_Scored):
    def forward(self, x):
        self.tag = "b" if self.tag == "a" else "a"
        return self.net(x)


@pytest.mark.parametrize(
    "cls,attribute",
    [
        (KeepsItsScores, "critic.last is reassigned"),
        (CountsInADict, "critic.stats is changed"),
        (RegistersABuffer, "critic.first_mean is set"),
        (FlipsATag, None),
    ],
)
def test_python_state_changed_in_forward_ends_as_eager_in_compile_mode(cls, attribute):
    """A tensor or a number kept in forward, a buffer registered there: compile mode names it and runs eager (a
    traced tensor cannot be kept; Dynamo compiles anew for each number). A string flipped at each call: compiled
    code repeats it, and compile mode stays."""
    ends = {}
    for mode in ("eager", "compile"):
        torch.manual_seed(0)
        critic = cls()
        step = fastgan.CriticStep(
            critic, torch.optim.Adam(critic.parameters(), lr=1e-2), loss="wgan", penalty="gp", mode=mode
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for t, (real, fake) in enumerate(_batches(3)):
                torch.manual_seed(100 + t)
                step(real, fake)
        messages = [str(w.message) for w in caught if "in forward" in str(w.message)]
        ends[mode] = critic
        if mode == "compile":
            assert step.mode == ("compile" if attribute is None else "eager")
            assert messages == ([] if attribute is None else [messages[0]]) and (
                attribute is None or f"{attribute} in forward" in messages[0]
            ), messages
    eager, compiled = ends["eager"], ends["compile"]
    for p, q in zip(compiled.parameters(), eager.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6)
    assert (compiled.stats, compiled.tag) == (eager.stats, eager.tag)
    assert (compiled.last is None) == (eager.last is None) and (
        eager.last is None or torch.equal(compiled.last, eager.last)
    )
    assert torch.equal(getattr(compiled, "first_mean", torch.zeros(1)), getattr(eager, "first_mean", torch.zeros(1)))

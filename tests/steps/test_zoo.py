"""Critics and generators fastgan was not designed around (tests/zoo.py), trained by the steps in every mode on
the CPU against the same steps written plainly in float64: parameters, every buffer (spectral norm's u and v,
BatchNorm's statistics and counters, a critic's own buffer) and the returned statistics, after several steps.

Tolerances come from the fp32 reference's own distance from float64: fastgan may be at most 4 times as far
(plus a few fp32 roundings of the value). Eager runs every critic with every loss and penalty; compile runs one
case per critic here and the whole matrix under ``-m slow`` (Inductor compiles for seconds per case).
"""

import warnings

import pytest
import torch
import zoo

import fastgan

LOSSES = ["wgan", "lsgan", "ns", "hinge"]
PENALTIES = ["gp", "lp", "zero-centred", "r1", "r2", "dragan"]
CASES = [(loss, penalty) for loss in [*LOSSES, None] for penalty in [*PENALTIES, None] if loss or penalty]
STEPS = 3
BATCH = 8
WEIGHT = 2.0
# Relative distance of a few fp32 roundings: the floor under the fp32 reference's own distance.
FLOOR = 1e-5


def _batches(shape, steps, conditional, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        real, fake = torch.randn(BATCH, *shape, generator=g), torch.randn(BATCH, *shape, generator=g)
        labels = torch.randint(zoo.CLASSES, (BATCH,), generator=g) if conditional else None
        fake_labels = torch.randint(zoo.CLASSES, (BATCH,), generator=g) if conditional else None
        out.append((real, fake, labels, fake_labels))
    return out


def _as(batches, dtype):
    return [(r.to(dtype), f.to(dtype), y, yf) for r, f, y, yf in batches]


def _optimizer(module, loss=None):
    """Adam, as GAN code trains; SGD with momentum for RaGAN. RaGAN's critic loss does not change when every score
    moves by one constant, so the gradient of the critic's last bias is zero up to rounding, and Adam turns
    rounding-sized gradients into steps of its learning rate: which one of two fp32 computations rounds to exactly
    zero is luck, and Adam would compare that luck rather than the step."""
    if loss == "ragan":
        return torch.optim.SGD(module.parameters(), lr=1e-2, momentum=0.9)
    return torch.optim.Adam(module.parameters(), lr=1e-3, betas=(0.5, 0.9))


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def train_critic(
    name,
    loss,
    penalty,
    mode=None,
    dtype=torch.float32,
    steps=STEPS,
    clip=None,
    lazy_every=1,
    precision="fp32",
    augment=None,
    regularize=None,
):
    """``steps`` critic updates of zoo critic ``name`` from seed 0: by fastgan in ``mode``, or by the plain
    reference when ``mode`` is None (all of it under bf16 autocast for ``precision="bf16"``, as a user writes
    it); ``augment``: keyword arguments of a ``fastgan.Augment`` (and of the reference's); ``regularize``: the
    step's ``lecam_weight``, ``bcr_weight`` and ``zcr_weight`` (zCR's moved samples: the fake batch plus small
    noise); returns (state_dict, per-step statistics, the step or None)."""
    regularize = regularize or {}
    build, shape = zoo.CRITICS[name]
    torch.manual_seed(0)
    critic = build().to(dtype)
    opt = _optimizer(critic, loss)
    batches = _as(_batches(shape, steps, name in zoo.CONDITIONAL), dtype)
    step = None
    reference_augment = zoo.ReferenceAugment(**augment) if augment and mode is None else None
    if mode is not None:
        step = fastgan.CriticStep(
            critic,
            opt,
            loss=loss,
            penalty=penalty,
            penalty_weight=WEIGHT,
            mode=mode,
            clip_value=clip,
            lazy_every=lazy_every,
            precision=precision,
            penalty_sigma=zoo.SIGMA,
            augment=fastgan.Augment(**augment) if augment else None,
            **regularize,
        )
    lecam = zoo.ReferenceLeCam(regularize["lecam_weight"]) if regularize.get("lecam_weight") else None
    bcr_weight = regularize.get("bcr_weight")
    bcr = (
        ((tuple(bcr_weight) if isinstance(bcr_weight, tuple) else (bcr_weight,) * 2), "translation")
        if bcr_weight
        else None
    )
    zcr = regularize.get("zcr_weight", 0.0)
    history = []
    for t, (real, fake, labels, fake_labels) in enumerate(batches):
        moved = None
        if zcr:
            noise = torch.randn(fake.shape, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
            moved = (fake.double() + 0.03 * noise).to(dtype)
        torch.manual_seed(100 + t)
        if step is not None:
            stats = step(real, fake, labels=labels, fake_labels=fake_labels, **({"fake_moved": moved} if zcr else {}))
            history.append({k: float(v) for k, v in stats.items()})
            continue
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            history.append(
                _reference_critic_steps(
                    t,
                    critic,
                    opt,
                    real,
                    fake,
                    labels,
                    fake_labels,
                    loss,
                    penalty,
                    clip,
                    lazy_every,
                    reference_augment,
                    dict(lecam=lecam, bcr=bcr, zcr=zcr, fake_moved=moved),
                )
            )
    return _snapshot(critic), history, step


def _reference_critic_steps(
    t, critic, opt, real, fake, labels, fake_labels, loss, penalty, clip, lazy_every, augment=None, regularize=None
):
    """Call ``t`` of the plain reference: the loss update (and the lazy penalty update), or the penalty update."""
    if loss is None:
        return zoo.reference_critic_step(
            critic, opt, real, fake, None, penalty, WEIGHT, labels, fake_labels, clip, augment
        )
    lazy = lazy_every > 1
    stats = zoo.reference_critic_step(
        critic,
        opt,
        real,
        fake,
        loss,
        None if lazy else penalty,
        WEIGHT,
        labels,
        fake_labels,
        clip,
        augment,
        **(regularize or {}),
    )
    if lazy and t % lazy_every == 0:
        stats = {
            **zoo.reference_critic_step(
                critic, opt, real, fake, None, penalty, WEIGHT * lazy_every, labels, fake_labels, clip, augment
            ),
            **stats,
        }
    return stats


def _distance(a, b):
    return float((a.double() - b.double()).norm())


def assert_like_reference(got, ref32, ref64, what, stats_floor=FLOOR, stats_atol=0.0):
    """Every tensor of ``got`` (a state dict or per-step statistics) within 4x the fp32 reference's distance
    from float64 (plus ``FLOOR`` of its size; ``stats_floor`` of a statistic's, plus ``stats_atol``); integer
    tensors (counters) equal."""
    if isinstance(got, list):
        assert len(got) == len(ref64)
        for t, (g, r32, r64) in enumerate(zip(got, ref32, ref64)):
            assert g.keys() == r64.keys(), f"{what}: step {t} returns {sorted(g)}, expected {sorted(r64)}"
            for k in r64:
                bound = 4 * abs(r32[k] - r64[k]) + stats_floor * (abs(r64[k]) + 1e-3) + stats_atol
                assert abs(g[k] - r64[k]) <= bound, (
                    f"{what}: step {t} {k} = {g[k]!r}, float64 reference {r64[k]!r} (fp32 reference {r32[k]!r})"
                )
        return
    assert got.keys() == ref64.keys()
    for k, r64 in ref64.items():
        g, r32 = got[k], ref32[k]
        if not r64.is_floating_point():
            assert torch.equal(g, r64), f"{what}: {k} is {g}, expected {r64}"
            continue
        bound = 4 * _distance(r32, r64) + FLOOR * float(r64.double().norm()) + 1e-12
        assert _distance(g, r64) <= bound, (
            f"{what}: {k} is {_distance(g, r64):.3g} from float64 (fp32 reference: {_distance(r32, r64):.3g})"
        )


def _check_critic_case(name, loss, penalty, mode, stats_atol=0.0, **kwargs):
    got, got_stats, step = train_critic(name, loss, penalty, mode, **kwargs)
    ref32, stats32, _ = train_critic(name, loss, penalty, **kwargs)
    ref64, stats64, _ = train_critic(name, loss, penalty, dtype=torch.float64, **kwargs)
    assert_like_reference(got, ref32, ref64, f"{name}, {loss} + {penalty}, {mode}")
    assert_like_reference(got_stats, stats32, stats64, f"{name}, {loss} + {penalty}, {mode}", stats_atol=stats_atol)
    return step


@pytest.mark.parametrize("loss,penalty", CASES)
@pytest.mark.parametrize("name", zoo.CRITICS)
def test_eager_steps_train_every_critic_like_the_reference(name, loss, penalty):
    # The step scores real and fake as one batch of 2B where the reference makes two calls of B: a convolution
    # rounds the two differently (on some CPUs), and the Wasserstein estimate, a difference of means of scores
    # about 1 in size, carries that rounding (1.1e-7 seen on the old-API spectral-norm conv critic).
    _check_critic_case(name, loss, penalty, "eager", stats_atol=4 * 2.0**-24)


# One compiled case per critic, each taking the critic's risk: the spectral-norm power iteration advanced once
# per critic call, conditional penalty points, dropout masks with DRAGAN's draws, a buffer moved in forward. The
# larger graphs (a residual critic's double backward compiles for a minute on 2 cores) run under -m slow.
SLOW = pytest.mark.slow
COMPILED = [
    ("sn mlp (parametrizations)", "wgan", "gp"),
    ("sn mlp (old api)", "hinge", "r1"),
    ("sn conv (old api)", "wgan", "lp"),
    pytest.param("sn resnet", "wgan", "gp", marks=SLOW),
    pytest.param("projection (conditional)", "hinge", "gp", marks=SLOW),
    ("projection (conditional)", "ns", "r2"),
    pytest.param("minibatch stddev", "wgan", "gp", marks=SLOW),
    ("dropout", "wgan", "dragan"),
    ("batchnorm", "lsgan", None),
    ("frozen features", "wgan", "zero-centred"),
    ("running buffer", "lsgan", None),
]


def _compiled_case(name, loss, penalty, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no fallback to eager
        step = _check_critic_case(name, loss, penalty, "compile", **kwargs)
    assert step.mode == "compile"


@pytest.mark.parametrize("name,loss,penalty", COMPILED)
def test_compiled_steps_train_the_critics_like_the_reference(name, loss, penalty):
    _compiled_case(name, loss, penalty)


@pytest.mark.slow
@pytest.mark.parametrize("loss,penalty", CASES)
@pytest.mark.parametrize("name", [n for n in zoo.CRITICS if n != "batchnorm"])
def test_compiled_steps_train_every_critic_like_the_reference(name, loss, penalty):
    _compiled_case(name, loss, penalty)


def test_a_batchnorm_critic_under_a_penalty_runs_eager_and_says_why():
    with pytest.warns(UserWarning) as caught:
        step = _check_critic_case("batchnorm", "wgan", "gp", "compile")
    assert step.mode == "eager"
    messages = [str(w.message) for w in caught]
    assert any("contains BatchNorm" in m for m in messages)  # the penalty's warning, from the step itself
    assert any("cannot compile" in m and "BatchNorm" in m for m in messages)


def test_eager_critic_step_warns_of_batchnorm_under_a_penalty():
    critic = zoo.BatchNormCritic()
    with pytest.warns(UserWarning, match="contains BatchNorm"):
        fastgan.CriticStep(critic, _optimizer(critic), loss="wgan", penalty="gp", mode="eager")


def test_a_critic_that_moves_its_buffer_under_a_penalty_runs_eager_exactly():
    """torch.func refuses an in-place update of a captured buffer inside the penalty's input gradient: compile
    mode says so once and the fallback step is exactly eager's (the attempt's buffer updates undone)."""
    with pytest.warns(UserWarning, match="cannot compile the step of the critic .RunningCenterCritic.: .*in-place"):
        step = _check_critic_case("running buffer", "lsgan", "gp", "compile")
    assert step.mode == "eager"


@pytest.mark.parametrize("mode", ["eager", pytest.param("compile", marks=SLOW)])
@pytest.mark.parametrize("name", ["sn conv (parametrizations)", "projection (conditional)"])
def test_lazy_r1_and_clipping_on_spectral_norm_critics(name, mode):
    """The lazy schedule (a penalty-only update every 2nd call) and clipping, with the power iteration's state
    (and the real samples' labels at R1's points for the conditional critic)."""
    kwargs = dict(lazy_every=2, clip=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        step = _check_critic_case(name, "ns", "r1", mode, steps=4, **kwargs)
    assert step.mode == mode


def test_frozen_parameters_stay_frozen_and_unchanged_in_every_mode():
    for mode in ("eager", "compile"):
        critic, generator = zoo.FrozenFeatureCritic(), zoo.BatchNormGenerator()
        frozen = {n: p.detach().clone() for n, p in critic.features.named_parameters()}
        # Clipping (WGAN's) of the trained parameters only: the frozen ones are far outside [-0.05, 0.05].
        critic_step = fastgan.CriticStep(
            critic, _optimizer(critic), loss="wgan", penalty="gp", mode=mode, clip_value=0.05
        )
        generator_step = fastgan.GeneratorStep(generator, critic, _optimizer(generator), loss="wgan", mode=mode)
        for _ in range(3):
            critic_step(torch.randn(BATCH, 12), generator(torch.randn(BATCH, zoo.LATENT)).detach())
            generator_step(torch.randn(BATCH, zoo.LATENT))
        assert critic_step.mode == generator_step.mode == mode
        for n, p in critic.features.named_parameters():
            assert not p.requires_grad and p.grad is None and torch.equal(p, frozen[n]), (mode, n)
        assert all(p.requires_grad and p.abs().max() <= 0.05 for p in critic.head.parameters())


# ----- generators -----

GENERATOR_PAIRS = {
    "batchnorm generator, sn critic": (zoo.BatchNormGenerator, zoo.SNMLPCritic, False),
    "batchnorm generator, old-api sn critic": (zoo.BatchNormGenerator, lambda: zoo.SNMLPCritic("old"), False),
    "conditional generator, projection critic": (zoo.ConditionalGenerator, zoo.ProjectionCritic, True),
    "batchnorm generator, dropout critic": (zoo.BatchNormGenerator, zoo.DropoutCritic, False),
    "batchnorm generator, frozen-feature critic": (zoo.BatchNormGenerator, zoo.FrozenFeatureCritic, False),
}
STATEFUL_PAIRS = {"reassigning generator, sn critic": (zoo.ReassignedBufferGenerator, zoo.SNMLPCritic, False)}
IMAGE_PAIRS = {"image generator, sn conv critic": (zoo.ImageGenerator, zoo.SNConvCritic, False)}


def train_generator(pair, loss, mode=None, dtype=torch.float64, steps=STEPS, augment=None, zcr=None):
    """``steps`` generator updates; returns the generator's and the critic's state dicts and the statistics (a
    relativistic loss with a real batch drawn beside each noise batch; ``augment``: as for :func:`train_critic`)."""
    build_generator, build_critic, conditional = {**GENERATOR_PAIRS, **STATEFUL_PAIRS, **IMAGE_PAIRS}[pair]
    torch.manual_seed(0)
    generator, critic = build_generator().to(dtype), build_critic().to(dtype)
    flags = [p.requires_grad for p in critic.parameters()]
    opt = _optimizer(generator)
    g = torch.Generator().manual_seed(1)
    step = None
    if mode:
        augmentation = fastgan.Augment(**augment) if augment else None
        regularize = dict(zcr_weight=zcr[0], zcr_sigma=zcr[1]) if zcr else {}
        step = fastgan.GeneratorStep(generator, critic, opt, loss=loss, mode=mode, augment=augmentation, **regularize)
    reference_augment = zoo.ReferenceAugment(**augment) if augment and not mode else None
    shape = zoo.IMAGE if pair in IMAGE_PAIRS else (12,)
    history = []
    for t in range(steps):
        noise = torch.randn(BATCH, zoo.LATENT, generator=g).to(dtype)
        labels = torch.randint(zoo.CLASSES, (BATCH,), generator=g) if conditional else None
        real = torch.randn(BATCH, *shape, generator=g).to(dtype) if loss in zoo.RELATIVISTIC else None
        torch.manual_seed(100 + t)
        if step is not None:
            history.append({k: float(v) for k, v in step(noise, labels=labels, real=real).items()})
        else:
            history.append(
                zoo.reference_generator_step(generator, critic, opt, noise, loss, labels, real, reference_augment, zcr)
            )
    assert [p.requires_grad for p in critic.parameters()] == flags
    assert all(p.grad is None for p in critic.parameters())
    return {**_snapshot(generator), **{"critic." + k: v for k, v in _snapshot(critic).items()}}, history, step


@pytest.mark.parametrize("mode", ["eager", "compile"])
@pytest.mark.parametrize("pair", GENERATOR_PAIRS)
def test_generator_steps_train_like_the_reference(pair, mode):
    _check_generator_case(pair, "hinge" if "projection" in pair else "ns", mode)


def _check_generator_case(pair, loss, mode, augment=None, zcr=None):
    """Generator steps of ``pair`` in ``mode`` (without a fallback) against the plain reference in float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        got, got_stats, step = train_generator(pair, loss, mode, torch.float32, augment=augment, zcr=zcr)
    assert step.mode == mode
    ref32, stats32, _ = train_generator(pair, loss, dtype=torch.float32, augment=augment, zcr=zcr)
    ref64, stats64, _ = train_generator(pair, loss, augment=augment, zcr=zcr)
    assert_like_reference(got, ref32, ref64, f"{pair}, {loss}, {mode}")
    assert_like_reference(got_stats, stats32, stats64, f"{pair}, {loss}, {mode}")


# ----- the 2019-2025 catalogue: relativistic losses, approximate R1 and R2 -----

# Each new loss without a penalty and with the penalties R3GAN pairs it with (and an approximate one); each
# approximate penalty alone, with a loss scoring samples alone, and with both relativistic losses.
RELATIVISTIC_CASES = [(loss, p) for loss in zoo.RELATIVISTIC for p in [None, "r1", "r1+r2"]]
APPROXIMATE_CASES = [
    ("rpgan", "r2-approx"),
    ("ragan", "r1-approx"),
    ("hinge", "r1-approx"),
    (None, "r2-approx"),
    ("wgan", "r2-approx"),
]


@pytest.mark.parametrize("loss,penalty", RELATIVISTIC_CASES + APPROXIMATE_CASES)
@pytest.mark.parametrize("name", zoo.CRITICS)
def test_eager_steps_train_every_critic_with_the_relativistic_losses_and_approximate_penalties(name, loss, penalty):
    _check_critic_case(name, loss, penalty, "eager")


# The approximate penalties take no double backward: they compile on every critic (BatchNorm's: below).
COMPILED_CATALOGUE = [
    ("sn mlp (parametrizations)", "rpgan", "r1-approx"),
    pytest.param("dropout", "ragan", "r2-approx", marks=SLOW),
    pytest.param("sn conv (old api)", "ragan", "r2-approx", marks=SLOW),
    pytest.param("projection (conditional)", "rpgan", "r2-approx", marks=SLOW),
    ("frozen features", "rpgan", "r1+r2"),
    pytest.param("sn resnet", "rpgan", "r1-approx", marks=SLOW),
    pytest.param("minibatch stddev", "ragan", "r1-approx", marks=SLOW),
]


@pytest.mark.parametrize("name,loss,penalty", COMPILED_CATALOGUE)
def test_compiled_steps_train_the_relativistic_losses_and_approximate_penalties_like_the_reference(name, loss, penalty):
    _compiled_case(name, loss, penalty)


def test_a_batchnorm_critic_compiles_the_approximate_penalty_and_warns_only_of_batchnorm():
    """No input gradient to trace: the BatchNorm critic that a gradient penalty keeps eager compiles here; the step
    still says that a per-sample penalty means little where samples interact."""
    with pytest.warns(UserWarning) as caught:
        step = _check_critic_case("batchnorm", "ns", "r1-approx", "compile")
    assert step.mode == "compile"
    assert all("contains BatchNorm" in str(w.message) for w in caught)


@pytest.mark.parametrize(
    "name,loss,penalty,mode",
    [
        ("sn mlp (old api)", "rpgan", "r1-approx", "graph"),
        ("dropout", "ragan", "r2", "graph"),
        ("projection (conditional)", "ragan", "r2-approx", "graph"),
        pytest.param("projection (conditional)", "rpgan", "r1-approx", "compile+graph", marks=SLOW),
    ],
)
def test_graph_modes_train_the_new_catalogue_like_the_reference(name, loss, penalty, mode, monkeypatch):
    _resolved_as(monkeypatch, mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        step = _check_critic_case(name, loss, penalty, mode)
    assert step.mode == mode


@pytest.mark.parametrize(
    "pair,loss,mode",
    [
        (pair, loss, mode)
        for pair in ("batchnorm generator, sn critic", "conditional generator, projection critic")
        for loss in zoo.RELATIVISTIC
        for mode in ("eager", "graph")
    ]
    + [
        # Dropout's masks are drawn in call order: the generated batch's come first.
        ("batchnorm generator, dropout critic", "rpgan", "eager"),
        ("batchnorm generator, dropout critic", "ragan", "graph"),
        ("conditional generator, projection critic", "rpgan", "compile"),
        pytest.param("batchnorm generator, sn critic", "ragan", "compile+graph", marks=SLOW),
    ],
)
def test_relativistic_generator_steps_train_like_the_reference(pair, loss, mode, monkeypatch):
    _resolved_as(monkeypatch, mode)
    _check_generator_case(pair, loss, mode)


# ----- differentiable augmentation (DiffAugment, ADA's p) -----

AUGMENT = dict(policy="color,translation,cutout", probability=0.8)
# A loss alone and with each kind of penalty point: interpolates, R1 (real batch), R2 (fake batch), both, DRAGAN,
# the approximate R1; a penalty alone.
AUGMENTED_CASES = [
    ("wgan", "gp"),
    ("ns", "r1"),
    ("hinge", "r2"),
    ("rpgan", "r1+r2"),
    ("lsgan", "dragan"),
    ("ns", "r1-approx"),
    (None, "r1"),
]


@pytest.mark.parametrize("loss,penalty", AUGMENTED_CASES)
@pytest.mark.parametrize("name", zoo.IMAGE_CRITICS)
def test_eager_steps_augment_like_the_reference_on_every_image_critic(name, loss, penalty):
    _check_critic_case(name, loss, penalty, "eager", augment=AUGMENT)


@pytest.mark.parametrize("loss,penalty", [("ns", "r1"), ("wgan", "gp"), ("rpgan", "r2-approx")])
def test_the_augmentation_kernels_train_like_the_reference(loss, penalty):
    """The Triton kernels (interpreted here) in the step: forward, adjoint and the penalty's double backward."""
    with fastgan.use_backend("triton"):
        _check_critic_case("sn conv (parametrizations)", loss, penalty, "eager", augment=AUGMENT)


@pytest.mark.parametrize(
    "name,loss,penalty,mode",
    [
        # Compiling a conv critic's step through the augmentation takes 50 s cold on 2 cores.
        pytest.param("sn conv (old api)", "ns", "r1", "compile", marks=SLOW),
        pytest.param("projection conv (conditional)", "hinge", "r1-approx", "compile", marks=SLOW),
        ("minibatch stddev", "wgan", "gp", "graph"),
        ("projection conv (conditional)", "rpgan", "r1+r2", "graph"),
        pytest.param("sn resnet", "ns", "r1", "compile+graph", marks=SLOW),
    ],
)
def test_compiled_and_captured_steps_augment_like_the_reference(name, loss, penalty, mode, monkeypatch):
    _resolved_as(monkeypatch, mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        # The residual critic's scores are O(1) and its Wasserstein estimate 1e-3: their difference carries an fp32
        # rounding of the scores (6e-8 compiled), more than the estimate's own relative floor allows.
        atol = 4 * 2.0**-24 if name == "sn resnet" else 0.0
        step = _check_critic_case(name, loss, penalty, mode, stats_atol=atol, augment=AUGMENT)
    assert step.mode == mode


# Compiled, the conv critic's step with the augmentation takes a minute cold on 2 cores: under -m slow; the
# compiled generator step below traces the augmentation in the default run.
@pytest.mark.parametrize("mode", ["eager", pytest.param("compile", marks=SLOW)])
def test_adaptive_augmentation_moves_p_like_the_reference(mode):
    """ADA's rule with a short interval and a fast speed, so that p moves within the run and the later draws
    depend on it: parameters, statistics (with ``real_sign``) and p itself as the plain reference has them."""
    ada = dict(policy="color,translation,cutout", probability=0.5, target=0.6, interval=2, speed=40)
    step = _check_critic_case("sn conv (old api)", "ns", "r1-approx", mode, steps=6, augment=ada)
    reference = zoo.ReferenceAugment(**ada)
    torch.manual_seed(0)
    critic = zoo.SNConvCritic()
    opt = _optimizer(critic)
    for t, (real, fake, _, _) in enumerate(_batches(zoo.IMAGE, 6, False)):
        torch.manual_seed(100 + t)
        zoo.reference_critic_step(critic, opt, real, fake, "ns", "r1-approx", WEIGHT, augment=reference)
    assert step.augment.probability.item() == reference.p.item() != 0.5


@pytest.mark.parametrize(
    "loss,mode,zcr",
    [("ns", "eager", None), ("rpgan", "eager", None), ("hinge", "compile", (0.5, 0.03)), ("ragan", "graph", None)],
)
def test_generator_steps_augment_like_the_reference(loss, mode, zcr, monkeypatch):
    """The compiled case also runs zCR's second generator pass (one compilation for both)."""
    _resolved_as(monkeypatch, mode)
    _check_generator_case("image generator, sn conv critic", loss, mode, augment=AUGMENT, zcr=zcr)


def test_augmentation_refuses_samples_that_are_not_images():
    critic = zoo.SNMLPCritic()
    step = fastgan.CriticStep(critic, _optimizer(critic), loss="wgan", augment="translation")
    with pytest.raises(ValueError, match=r"augment needs \(B, C, H, W\) images: real and fake have shape \(8, 12\)"):
        step(torch.randn(8, 12), torch.randn(8, 12))
    with pytest.raises(TypeError, match="augment must be a policy str"):
        fastgan.CriticStep(critic, _optimizer(critic), loss="wgan", augment=0.5)
    with pytest.raises(ValueError, match="policy must name"):
        fastgan.GeneratorStep(zoo.BatchNormGenerator(), critic, _optimizer(critic), loss="ns", augment="flip")


# ----- LeCam, bCR and zCR -----

LECAM, BCR, ZCR = dict(lecam_weight=0.3), dict(bcr_weight=(10.0, 4.0)), dict(zcr_weight=5.0)


@pytest.mark.parametrize("loss,penalty,regularize", [("hinge", None, LECAM), ("ns", "r1", LECAM), ("wgan", None, ZCR)])
@pytest.mark.parametrize("name", zoo.CRITICS)
def test_eager_steps_regularize_like_the_reference(name, loss, penalty, regularize):
    _check_critic_case(name, loss, penalty, "eager", steps=4, regularize=regularize)


# Not WGAN: its loss and bCR's both barely move when the residual critic's last conv bias shifts every score
# alike, and Adam turns that rounding-sized gradient into learning-rate-sized steps (RaGAN's case, see _optimizer).
@pytest.mark.parametrize("loss,penalty", [("hinge", None), ("ns", "r1")])
@pytest.mark.parametrize("name", zoo.IMAGE_CRITICS)
def test_eager_steps_apply_bcr_like_the_reference(name, loss, penalty):
    _check_critic_case(name, loss, penalty, "eager", regularize=BCR)


@pytest.mark.parametrize(
    "name,loss,penalty,mode,lazy_every",
    [
        ("sn mlp (parametrizations)", "hinge", None, "compile", 1),
        ("projection conv (conditional)", "ns", "r1", "graph", 2),
        # A conv critic's compiled step with bCR's two extra passes compiles for 45 s cold on 2 cores.
        pytest.param("sn conv (old api)", "hinge", None, "compile", 1, marks=SLOW),
        pytest.param("minibatch stddev", "ns", "r1", "compile+graph", 1, marks=SLOW),
    ],
)
def test_compiled_and_captured_steps_regularize_like_the_reference(name, loss, penalty, mode, lazy_every, monkeypatch):
    """LeCam's averages read and written around every update, bCR's draws (image critics), zCR's extra input, in
    one step."""
    _resolved_as(monkeypatch, mode)
    regularize = {**LECAM, **ZCR, **(BCR if name in zoo.IMAGE_CRITICS else {})}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        step = _check_critic_case(name, loss, penalty, mode, steps=4, lazy_every=lazy_every, regularize=regularize)
    assert step.mode == mode


@pytest.mark.parametrize("mode", ["eager", "graph"])  # compiled: with the augmentation, above
def test_generator_steps_apply_zcr_like_the_reference(mode, monkeypatch):
    _resolved_as(monkeypatch, mode)
    _check_generator_case("batchnorm generator, dropout critic", "ns", mode, zcr=(0.5, 0.03))


def test_regularizers_refuse_what_they_cannot_do():
    critic = zoo.SNConvCritic()
    with pytest.raises(ValueError, match="regularize the loss update: give a loss"):
        fastgan.CriticStep(critic, _optimizer(critic), loss=None, penalty="r1", lecam_weight=0.3)
    with pytest.raises(ValueError, match="not with augment"):
        fastgan.CriticStep(critic, _optimizer(critic), loss="ns", augment="color", bcr_weight=10.0)
    with pytest.raises(ValueError, match="bcr_policy: policy must name"):
        fastgan.CriticStep(critic, _optimizer(critic), loss="ns", bcr_weight=10.0, bcr_policy="flip")
    with pytest.raises(ValueError, match="lecam_decay must be in"):
        fastgan.CriticStep(critic, _optimizer(critic), loss="ns", lecam_weight=0.3, lecam_decay=1.0)
    step = fastgan.CriticStep(critic, _optimizer(critic), loss="ns", zcr_weight=5.0)
    x = torch.randn(4, *zoo.IMAGE)
    with pytest.raises(ValueError, match="zcr_weight needs fake_moved"):
        step(x, x)
    with pytest.raises(ValueError, match="fake_moved has shape"):
        step(x, x, fake_moved=x[:2])
    plain = fastgan.CriticStep(critic, _optimizer(critic), loss="ns")
    with pytest.raises(ValueError, match="fake_moved is zCR's input"):
        plain(x, x, fake_moved=x)


# ----- modules that change their own state in forward -----


def _resolved_as(monkeypatch, mode):
    """Steps resolve ``mode`` on the CPU: graph modes with a stand-in capture (the GPU tests capture for real)."""
    from helpers import stand_in_capture

    from fastgan.steps.runner import Runner

    if mode in ("graph", "compile+graph"):
        stand_in_capture(monkeypatch)
        monkeypatch.setattr(Runner, "resolve_mode", lambda self, device: mode)


@pytest.mark.parametrize("mode", ["compile", "graph", "compile+graph"])
@pytest.mark.parametrize("penalty", ["gp", None])
@pytest.mark.parametrize("name", sorted(zoo.STATEFUL))
def test_critics_that_change_their_state_in_forward_train_as_eager_and_say_what(name, penalty, mode, monkeypatch):
    """A buffer reassigned in forward (a new tensor, as LeCam's and ADA's running statistics are written) or a
    Python attribute counted there: compiled code and graph replays cannot repeat either, so the step says
    which, once, and runs eager, leaving parameters, buffers and attributes as the plain reference does."""
    _resolved_as(monkeypatch, mode)
    with pytest.warns(
        UserWarning, match=r"critic\.(mean|count|calls|seen) is (reassigned|changed) in forward"
    ) as caught:
        step = _check_critic_case(name, "wgan", penalty, mode)
    assert step.mode == "eager" and len([w for w in caught if "in forward" in str(w.message)]) == 1
    if name == "python counter":
        torch.manual_seed(0)
        reference = zoo.CountingCritic()
        opt = _optimizer(reference)
        for t, (real, fake, _, _) in enumerate(_batches(zoo.VECTOR, STEPS, False)):
            torch.manual_seed(100 + t)
            zoo.reference_critic_step(reference, opt, real, fake, "wgan", penalty, WEIGHT)
        assert (step.critic.calls, step.critic.seen) == (reference.calls, reference.seen)


@pytest.mark.parametrize("mode", ["compile", "graph"])
def test_a_generator_that_reassigns_a_buffer_trains_as_eager(mode, monkeypatch):
    _resolved_as(monkeypatch, mode)
    pair = "reassigning generator, sn critic"
    with pytest.warns(UserWarning, match=r"generator\.mean is reassigned in forward"):
        got, got_stats, step = train_generator(pair, "ns", mode, torch.float32)
    ref32, stats32, _ = train_generator(pair, "ns", dtype=torch.float32)
    ref64, stats64, _ = train_generator(pair, "ns")
    assert step.mode == "eager"
    assert_like_reference(got, ref32, ref64, f"reassigning generator, {mode}")
    assert_like_reference(got_stats, stats32, stats64, f"reassigning generator, {mode}")

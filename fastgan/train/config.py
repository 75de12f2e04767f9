"""Training settings: the reference's recipes as presets, tuned values for the 2-D sets, and user overrides.

A run's settings are resolved in three layers, later ones winning: the loss's preset (the reference's values, which
suit MNIST-sized images), the 2-D preset of that loss when the data is a 2-D set, then every value the user
gave. ``summary.json`` and ``--help`` show the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from ..augment import policy_of
from ..steps.modes import GRAPH_MODES, MODES
from ..steps.precision import PRECISIONS
from .data import IMAGE_SETS, TOY_SETS
from .models import image_size_problem
from .settings import RECIPE_NAMES, RECIPES, Settings

MODELS = ("mlp", "dcgan", "resnet", "infogan")
NOISES = ("normal", "uniform")  # the generator's input: N(0, I), or uniform on [-1, 1]^latent_dim

# The reference's recipes (and their usual relatives), for images.
PRESETS: dict[str, dict] = {
    "wgan": dict(optimizer="rmsprop", lr=5e-5, n_critic=5, clip_value=0.01),
    "wgan-gp": dict(optimizer="adam", lr=1e-4, betas=(0.5, 0.999), n_critic=5, penalty_weight=10.0),
    "wgan-lp": dict(optimizer="adam", lr=1e-4, betas=(0.5, 0.999), n_critic=5, penalty_weight=10.0),
    "lsgan": dict(optimizer="adam", lr=2e-4, betas=(0.5, 0.999), n_critic=1, lsgan_abc=(0.0, 1.0, 1.0)),
    "ns": dict(optimizer="adam", lr=2e-4, betas=(0.5, 0.999), n_critic=1),
    "hinge": dict(optimizer="adam", lr=2e-4, betas=(0.5, 0.999), n_critic=1),
    # R1 with gamma = 10 (weight gamma / 2) on the non-saturating loss, StyleGAN2's pairing.
    "r1": dict(optimizer="adam", lr=2e-4, betas=(0.5, 0.999), n_critic=1, penalty_weight=5.0),
    # SNGAN (Miyato et al., 2018): the hinge loss with a spectrally normalised critic, their ResNet setting.
    "sngan": dict(optimizer="adam", lr=2e-4, betas=(0.0, 0.9), n_critic=5, spectral_norm=True),
    # DRAGAN (Kodali et al., 2017): the non-saturating loss with a gradient penalty around perturbed real samples,
    # lambda = 10, one critic step.
    "dragan": dict(optimizer="adam", lr=2e-4, betas=(0.5, 0.999), n_critic=1, penalty_weight=10.0),
    # RpGAN + R1 with R3GAN's Adam betas (0, 0.99) (Huang et al., 2024) and StyleGAN2's gamma 10.
    "rpgan": dict(optimizer="adam", lr=2e-4, betas=(0.0, 0.99), n_critic=1, penalty_weight=5.0),
    # R3GAN: RpGAN + R1 + R2 at every step, Adam betas (0, 0.99), gamma 0.05 (their CIFAR-10 value, the closest of
    # their data sets to 28x28 and 32x32 images; weight gamma / 2). Their architecture is not ours: a recipe.
    "r3gan": dict(optimizer="adam", lr=2e-4, betas=(0.0, 0.99), n_critic=1, penalty_weight=0.025),
    # RaGAN (Jolicoeur-Martineau, 2019): her RaSGAN setting, Adam 2e-4, betas (0.5, 0.999), one critic step.
    "ragan": dict(optimizer="adam", lr=2e-4, betas=(0.5, 0.999), n_critic=1),
    # Approximate R1 (Seaweed-APT, Lin et al. 2025): lambda 100 at sigma 0.01, about R1 with gamma 0.02.
    "r1-approx": dict(optimizer="adam", lr=2e-4, betas=(0.5, 0.999), n_critic=1, penalty_weight=100.0),
}

# The 2-D sets: deeper MLPs without Tanh, 2-D noise, larger batches, learning rates decayed linearly to 0 and
# an EMA of the generator (together they remove the jitter that would push samples out of a mode's 3-sigma
# disc). WGAN-GP's lambda is 1: the ring's modes are 0.77 apart, and lambda 10 smooths the critic too much to
# separate them. Longer runs thin out the bridges a continuous generator draws between modes. How each value
# was chosen, with the runs: docs/training.md, "Presets".
TOY_PRESETS: dict[str, dict] = {
    "wgan": dict(steps=4000),
    "wgan-gp": dict(lr=1e-3, betas=(0.5, 0.9), n_critic=2, penalty_weight=1.0, steps=20000),
    "wgan-lp": dict(lr=1e-3, betas=(0.5, 0.9), n_critic=2, penalty_weight=1.0, steps=4000),
    "lsgan": dict(lr=1e-3, betas=(0.5, 0.9), steps=4000),
    "ns": dict(lr=1e-3, betas=(0.5, 0.9), steps=4000),
    "hinge": dict(lr=1e-3, betas=(0.5, 0.9), steps=4000),
    "r1": dict(lr=1e-3, betas=(0.5, 0.9), penalty_weight=0.05, steps=4000),
    # SNGAN's optimizer (betas (0, 0.9), 5 critic steps) at a 2-D rate: with 1 critic step, or lr 2e-4, the
    # spectrally normalised critic did not separate the ring's modes (docs/training.md, "Presets").
    "sngan": dict(lr=2e-3, betas=(0.0, 0.9), n_critic=5, steps=4000),
    # Not tuned on the 2-D sets: the 2-D rates, and WGAN-GP's 2-D lambda.
    "dragan": dict(lr=1e-3, betas=(0.5, 0.9), penalty_weight=1.0, steps=4000),
    # Not tuned either: the 2-D rates, R1's 2-D weight (gamma 0.1); approximate R1's lambda the same gamma at sigma
    # 0.01 (lambda sigma^2 = gamma / 2).
    "rpgan": dict(lr=1e-3, betas=(0.0, 0.99), penalty_weight=0.05, steps=4000),
    "r3gan": dict(lr=1e-3, betas=(0.0, 0.99), penalty_weight=0.05, steps=4000),
    "ragan": dict(lr=1e-3, betas=(0.5, 0.9), steps=4000),
    "r1-approx": dict(lr=1e-3, betas=(0.5, 0.9), penalty_weight=500.0, steps=4000),
}
TOY_MODEL = dict(model="mlp", latent_dim=2, hidden=128, depth=3, batch_size=256, ema=0.999, lr_decay=True)
# The ring is a circle of modes: 1-D noise only has to be cut into 8 arcs, which leaves fewer samples between
# modes than 2-D noise.
DATA_PRESETS: dict[str, dict] = {"ring": dict(latent_dim=1)}
# A loss's values for one data set, over the two layers above. The grid's 25 modes need longer training for
# the bridges between them to thin out. Unpacked, LSGAN, NS and hinge collapse onto part of the grid whatever
# else was tried; packing pairs of samples for the critic (PacGAN2) gets them onto every mode, LSGAN and NS
# with larger batches (NS also a lower rate). The runs: docs/training.md, "Presets", and docs/study.md.
TUNED: dict[tuple[str, str], dict] = {
    **{(loss, "grid"): dict(steps=25000) for loss in ("wgan-gp", "wgan-lp", "r1")},
    ("lsgan", "grid"): dict(steps=25000, pack=2, batch_size=512),
    ("ns", "grid"): dict(steps=25000, pack=2, batch_size=512, lr=5e-4),
    ("hinge", "grid"): dict(steps=25000, pack=2),
    # Spectral norm finds all 25 grid modes unpacked, where plain hinge collapses (docs/training.md, "Presets").
    ("sngan", "grid"): dict(steps=16000),
}
IMAGE_MODEL = dict(model="mlp", latent_dim=100, hidden=128, depth=1, batch_size=64, ema=0.0, image_size=28, steps=5000)

# Published protocols, each as a whole: its data, models, noise, batch, length and evaluation. The length is
# counted in critic updates (``updates``) and evaluated every ``eval_updates`` of them, so that a recipe with
# n_critic critic steps per generator step trains updates / n_critic generator steps.
# lucic2018: Lucic et al., "Are GANs Created Equal?" (NeurIPS 2018), on compare_gan's settings (docs/study.md,
# "Fashion-MNIST"): the InfoGAN-style pair, z 64-d uniform, batch 64, 15,625 critic updates, FID of 10,000
# generated images against the 10,000 test images at every 3,906 updates, the lowest-FID checkpoint kept.
PROTOCOLS: dict[str, dict] = {
    "lucic2018": dict(
        data="fashion-mnist",
        model="infogan",
        latent_dim=64,
        noise="uniform",
        batch_size=64,
        image_size=28,
        updates=15625,
        eval_updates=3906,
        fid=10000,
    ),
}


# What an option left out means when no preset sets it.
DEFAULTS = dict(
    loss="wgan-gp",
    data="ring",
    protocol=None,
    noise="normal",
    seed=0,
    device="auto",
    log_every=100,
    checkpoint_every=1000,
    eval_samples=2500,
    mode="auto",
    lazy_every=1,
    download=False,
    dist_timeout=60.0,
    pack=1,
    conditional=False,
    spectral_norm=False,
    label_smoothing=0.0,
    precision="fp32",
    fid=0,
    fid_weights=None,
    tensorboard=False,
    memory_format="auto",
)
# How image batches and conv weights are laid out: auto is channels_last for conv critics under bf16 on CUDA,
# where cuDNN's tensor-core convolutions work in NHWC; contiguous (NCHW) elsewhere.
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
# Options a resumed run may change: they alter neither the model nor the random numbers of training.
RESUME_SAFE = (
    "steps",
    "device",
    "mode",
    "log_every",
    "checkpoint_every",
    "eval_samples",
    "download",
    "dist_timeout",
    "fid",
    "fid_weights",
    "tensorboard",
    "memory_format",
)


@dataclass
class TrainConfig:
    """Everything a run depends on. ``None`` means "take the preset's value"."""

    loss: str | None = None  # default "wgan-gp"
    data: str | None = None  # default "ring"
    data_root: str | None = None  # default for fashion-mnist: Debian's /usr/share/datasets/fashion-mnist
    protocol: str | None = None  # a published protocol as a whole (PROTOCOLS), under every option given
    steps: int | None = None  # generator steps, each after n_critic critic steps
    batch_size: int | None = None
    seed: int | None = None  # default 0
    device: str | None = None  # default "auto"
    model: str | None = None  # "mlp" (the reference's pair, or the 2-D MLPs), "dcgan", "resnet" or "infogan"
    latent_dim: int | None = None
    noise: str | None = None  # "normal" (default) or "uniform" on [-1, 1]
    hidden: int | None = None
    depth: int | None = None
    image_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None  # both networks
    betas: tuple[float, float] | None = None
    n_critic: int | None = None
    penalty_weight: float | None = None  # lambda (GP, LP, DRAGAN) or gamma / 2 (R1)
    clip_value: float | None = None
    lsgan_abc: tuple[float, float, float] | None = None
    ema: float | None = None  # decay of the generator's EMA; 0 disables it
    lr_decay: bool | None = None  # decay both learning rates linearly to 0 over the run
    log_every: int | None = None  # default 100
    checkpoint_every: int | None = None  # default 1000
    eval_samples: int | None = None  # default 2500
    download: bool | None = None  # fetch MNIST through torchvision when it is not under data_root
    mode: str | None = None  # one of steps.modes.MODES: "auto" (the default), "eager", "compile", "graph", ...
    lazy_every: int | None = None  # apply the penalty every k-th critic step (R1 lazy regularization)
    dist_timeout: float | None = None  # seconds a multi-process run waits for a rank before failing (default 60)
    pack: int | None = None  # the critic scores groups of this many samples (PacGAN); default 1
    conditional: bool | None = None  # class-conditional GAN on an image set's labels (projection critic)
    spectral_norm: bool | None = None  # spectral normalization of the provided critic (on for sngan)
    label_smoothing: float | None = None  # one-sided label smoothing of the ns loss (ns, r1): real target 1 - s
    precision: str | None = None  # "fp32" (default) or "bf16": the networks under bf16 autocast (fastgan.steps)
    fid: int | None = None  # FID and KID on this many generated and real images at every log step (images); 0: off
    fid_weights: str | None = None  # the FID network's file for --fid (default: torch-fidelity's, downloaded)
    tensorboard: bool | None = None  # also log scalars and sample grids to OUT/tensorboard
    memory_format: str | None = None  # "auto" (default), "channels_last" or "contiguous": see MEMORY_FORMATS
    augment: str | None = None  # DiffAugment's policy, e.g. "color,translation,cutout" (images)
    ada_target: float | None = None  # ADA: adapt the augmentation's probability to this mean sign (0.6)
    lecam: float | None = None  # LeCam's weight (0.3 in its paper); 0: off
    bcr: float | None = None  # bCR's lambda_real = lambda_fake (10 in its paper); 0: off
    zcr: tuple[float, float] | None = None  # zCR's (lambda_dis, lambda_gen) (5, 0.5 in its paper)

    def given(self) -> dict:
        """The settings set here (not None), i.e. the options a user chose."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def resolved(self) -> Settings:
        """Concrete settings: defaults, the loss's preset, the 2-D preset or the protocol, then every value given
        here."""
        given = self.given()
        protocol = given.get("protocol")
        if protocol is not None and protocol not in PROTOCOLS:
            raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        layer = dict(PROTOCOLS[protocol]) if protocol else {}
        loss = given.get("loss", DEFAULTS["loss"])
        data = given.get("data", layer.get("data", DEFAULTS["data"]))
        if loss not in RECIPES:
            raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(RECIPE_NAMES)}")
        if data not in TOY_SETS + IMAGE_SETS:
            raise ValueError(f"unknown data set {data!r}; choose from {', '.join(TOY_SETS + IMAGE_SETS)}")
        toy = data in TOY_SETS
        settings: dict = dict(
            DEFAULTS, betas=(0.5, 0.999), penalty_weight=0.0, clip_value=0.0, lsgan_abc=(0.0, 1.0, 1.0), lr_decay=False
        )
        settings.update(TOY_MODEL if toy else IMAGE_MODEL)
        settings.update(PRESETS[loss])
        if toy:
            settings.update(TOY_PRESETS[loss])
            settings.update(DATA_PRESETS.get(data, {}))
            settings.update(TUNED.get((loss, data), {}))
        if layer:
            n_critic = given.get("n_critic", settings["n_critic"])
            updates, every = layer.pop("updates"), layer.pop("eval_updates")
            settings.update(layer, steps=-(-updates // n_critic), log_every=max(1, round(every / n_critic)))
        settings.update(given)
        check(settings, given)
        return Settings.from_options(settings)


SEED_LIMIT = 2**32  # seeds are in [0, 2^32), numpy's range


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _positive(s: dict, name: str, finite: bool = True) -> None:
    value = s[name]
    if not (value > 0) or (finite and not math.isfinite(value)):
        raise ValueError(f"{_option(name)} must be a finite number > 0, got {value}")


# Upper bounds that keep a mistyped size from allocating until the process is killed: far above what a run on
# one machine uses (2^20 samples a batch, 16384-wide layers, FID on 200,000 images).
LIMITS = {
    "batch_size": 2**20,
    "latent_dim": 2**14,
    "hidden": 2**14,
    "depth": 64,
    "eval_samples": 10**6,
    "n_critic": 1000,
    "fid": 200_000,
}


def check(s: dict, given: dict | None = None) -> None:
    """Raise ``ValueError`` naming the option when a concrete setting is out of range, or when an option in
    ``given`` (the user's) does not apply to the run."""
    given = given or {}
    for name in (
        "steps",
        "batch_size",
        "n_critic",
        "latent_dim",
        "hidden",
        "depth",
        "log_every",
        "checkpoint_every",
        "eval_samples",
        "lazy_every",
        "pack",
    ):
        if int(s[name]) < 1:
            raise ValueError(f"{_option(name)} must be >= 1, got {s[name]}")
        if name in LIMITS and int(s[name]) > LIMITS[name]:
            raise ValueError(f"{_option(name)} must be at most {LIMITS[name]}, got {s[name]}")
    if not 0 <= s["seed"] < SEED_LIMIT:
        raise ValueError(f"--seed must be in [0, 2^32), got {s['seed']}")
    for name in ("dist_timeout", "lr"):
        _positive(s, name)
    if not all(0 <= b < 1 for b in s["betas"]):
        raise ValueError(f"--betas must be two numbers in [0, 1), got {','.join(map(str, s['betas']))}")
    if not all(math.isfinite(v) for v in s["lsgan_abc"]):
        raise ValueError(f"--lsgan-abc must be finite, got {','.join(map(str, s['lsgan_abc']))}")
    if not 0 <= s["ema"] < 1:
        raise ValueError(f"--ema must be in [0, 1), got {s['ema']}")
    if not 0 <= s["label_smoothing"] < 1:
        raise ValueError(f"--label-smoothing must be in [0, 1), got {s['label_smoothing']}")
    if s["mode"] not in MODES:
        raise ValueError(f"--mode must be one of {', '.join(MODES)}, got {s['mode']!r}")
    if s["precision"] not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {s['precision']!r}")
    if s["memory_format"] not in MEMORY_FORMATS:
        raise ValueError(f"--memory-format must be one of {', '.join(MEMORY_FORMATS)}, got {s['memory_format']!r}")
    if s["mode"] in GRAPH_MODES and s["device"] == "cpu":
        raise ValueError(f"--mode {s['mode']} captures CUDA graphs: it needs --device cuda (or auto on a GPU machine)")
    if s["noise"] not in NOISES:
        raise ValueError(f"--noise must be one of {', '.join(NOISES)}, got {s['noise']!r}")
    if s["model"] not in MODELS:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, got {s['model']!r}")
    if s["optimizer"] not in ("adam", "rmsprop"):
        raise ValueError(f"--optimizer must be adam or rmsprop, got {s['optimizer']!r}")
    if s["data"] in TOY_SETS and s["model"] != "mlp":
        raise ValueError("the 2-D data sets use --model mlp")
    if s["data"] in TOY_SETS and s["memory_format"] == "channels_last":
        raise ValueError("--memory-format channels_last lays out images: it does not apply to 2-D data")
    if s["data"] in IMAGE_SETS and s["data"] != "fashion-mnist" and not s.get("data_root"):
        raise ValueError(f"--data {s['data']} needs --data-root DIR")
    if s["data"] in IMAGE_SETS and (problem := image_size_problem(s["model"], s["image_size"])):
        raise ValueError(problem)
    for name in ("image_size", "data_root"):
        if s["data"] in TOY_SETS and given.get(name) is not None:
            raise ValueError(
                f"{_option(name)} applies to image data sets ({', '.join(IMAGE_SETS)}), not --data {s['data']}"
            )
    if given.get("download") and s["data"] not in ("mnist", "fashion-mnist"):
        raise ValueError(f"--download fetches mnist or fashion-mnist, not --data {s['data']}")
    recipe = RECIPES[s["loss"]]
    loss, penalty = recipe.loss, recipe.penalty
    if penalty is not None:
        _positive(s, "penalty_weight")
    if s["clip_value"] < 0 or "clip_value" in given and not s["clip_value"] > 0 or not math.isfinite(s["clip_value"]):
        raise ValueError(f"--clip-value must be a finite number > 0, got {s['clip_value']}")
    unused = {
        "penalty_weight": penalty is None,
        "lazy_every": penalty is None,
        "lsgan_abc": loss != "lsgan",
        "label_smoothing": loss != "ns",
        "pack": s["conditional"],
    }
    for name, ignored in unused.items():
        if ignored and name in given and given[name] != DEFAULTS.get(name):
            why = "--conditional" if name == "pack" else f"--loss {s['loss']}"
            raise ValueError(f"{_option(name)} does not apply with {why}")
    if int(s["fid"]) < 0 or s["fid"] == 1 or s["fid"] > LIMITS["fid"]:
        raise ValueError(f"--fid must be 0 (off) or 2 to {LIMITS['fid']} images, got {s['fid']}")
    if s["fid"] and s["data"] not in IMAGE_SETS:
        raise ValueError(f"--fid measures images: use --data {', '.join(IMAGE_SETS)}")
    if s["fid_weights"] is not None and not s["fid"]:
        raise ValueError("--fid-weights needs --fid N")
    if s.get("augment") is not None:
        if s["data"] not in IMAGE_SETS:
            raise ValueError(f"--augment augments images: use --data {', '.join(IMAGE_SETS)}")
        try:
            policy_of(s["augment"])
        except ValueError as exc:
            raise ValueError(f"--augment: {exc}") from None
    if s.get("ada_target") is not None:
        if s.get("augment") is None:
            raise ValueError("--ada-target adapts the augmentation's probability: it needs --augment POLICY")
        if not -1 <= s["ada_target"] <= 1:
            raise ValueError(f"--ada-target must be in [-1, 1] (a mean sign; ADA's is 0.6), got {s['ada_target']}")
    for name in ("lecam", "bcr"):
        if not (s.get(name, 0.0) >= 0 and math.isfinite(s.get(name, 0.0))):
            raise ValueError(f"{_option(name)} must be a finite weight >= 0, got {s[name]}")
    if not all(w >= 0 and math.isfinite(w) for w in s.get("zcr", (0.0, 0.0))):
        raise ValueError(f"--zcr must be two finite weights >= 0, got {','.join(map(str, s['zcr']))}")
    if s.get("bcr", 0.0) and s["data"] not in IMAGE_SETS:
        raise ValueError(f"--bcr compares scores of translated images: use --data {', '.join(IMAGE_SETS)}")
    if s.get("bcr", 0.0) and s.get("augment") is not None:
        raise ValueError("--bcr does not combine with --augment (the critic would compare augmented images)")
    if s["conditional"] and s["data"] not in IMAGE_SETS:
        raise ValueError(
            f"--conditional trains on the class labels of an image set: use --data {', '.join(IMAGE_SETS)}"
        )


def preset_table() -> str:
    """The presets as text, for ``--help``."""
    lines = ["presets (images; 2-D sets override with the second line):"]
    for loss in RECIPE_NAMES:
        lines.append(f"  {loss:8s} {_fmt(PRESETS[loss])}")
        lines.append(f"  {'':8s} 2-D: {_fmt(TOY_PRESETS[loss])}")
        for (tuned_loss, data), values in TUNED.items():
            if tuned_loss == loss:
                lines.append(f"  {'':8s} {data}: {_fmt(values)}")
    lines.append(f"  models   images: {_fmt(IMAGE_MODEL)}")
    lines.append(f"           2-D: {_fmt(TOY_MODEL)}")
    for data, values in DATA_PRESETS.items():
        lines.append(f"           {data}: {_fmt(values)}")
    for name, values in PROTOCOLS.items():
        lines.append(f"protocol {name}: {_fmt(values)}")
    return "\n".join(lines)


def _fmt(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def channels_last(s: Settings, device: torch.device, critic: torch.nn.Module, sample_shape: tuple[int, ...]) -> bool:
    """Whether a run of settings ``s`` lays its image batches and conv weights out channels_last
    (``memory_format``; auto: a critic with ``Conv2d`` layers of (C, H, W) samples under bf16 on CUDA)."""
    if len(sample_shape) != 3 or s.memory_format == "contiguous":
        return False
    if s.memory_format == "channels_last":
        return True
    convolves = any(isinstance(m, torch.nn.Conv2d) for m in critic.modules())
    return convolves and s.precision == "bf16" and torch.device(device).type == "cuda"

"""A run's settings, resolved (:meth:`fastgan.train.TrainConfig.resolved`): every value concrete and checked, in a
frozen dataclass; and the recipes the ``--loss`` option names."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Recipe:
    """What a training recipe trains with, as the step objects take it (:class:`fastgan.CriticStep`): the loss
    (critic and generator sides of :mod:`fastgan.losses`) and the critic's penalty (or None)."""

    loss: str
    penalty: str | None


RECIPES = {
    "wgan": Recipe("wgan", None),
    "wgan-gp": Recipe("wgan", "gp"),
    "wgan-lp": Recipe("wgan", "lp"),
    "lsgan": Recipe("lsgan", None),
    "ns": Recipe("ns", None),
    "hinge": Recipe("hinge", None),
    "r1": Recipe("ns", "r1"),
    "sngan": Recipe("hinge", None),
    "dragan": Recipe("ns", "dragan"),
    "rpgan": Recipe("rpgan", "r1"),
    "r3gan": Recipe("rpgan", "r1+r2"),
    "ragan": Recipe("ragan", None),
    "r1-approx": Recipe("ns", "r1-approx"),
}
RECIPE_NAMES = tuple(RECIPES)  # the choices of --loss
# The option that sets a field, where their names differ: files (summary.json, checkpoints) record options.
OPTION_NAMES = {"recipe": "loss"}


@dataclass(frozen=True)
class Settings:
    """Everything a run depends on, resolved. Each field is set by the option of its name (``recipe`` by
    ``--loss``); the comments say what a field holds."""

    recipe: str  # the training recipe, a key of RECIPES (its loss and penalty)
    data: str  # a 2-D set (fastgan.train.data.TOY_SETS) or an image set (IMAGE_SETS)
    steps: int  # generator steps, each after n_critic critic steps
    batch_size: int  # samples a step, over every process
    seed: int  # the random seed of training (the evaluation noise has its own)
    device: str  # "auto", "cpu" or "cuda"
    model: str  # the provided pair: "mlp", "dcgan", "resnet" or "infogan"
    latent_dim: int  # the generator's noise dimensions (class embedding not counted)
    hidden: int  # the MLPs' width, or the ResNets' channels
    depth: int  # the MLPs' hidden layers
    optimizer: str  # "adam" or "rmsprop", for both networks
    lr: float  # both networks' learning rate
    betas: tuple[float, float]  # Adam's
    n_critic: int  # critic steps per generator step
    penalty_weight: float  # lambda (GP, LP, DRAGAN, approximate R1) or gamma / 2 (R1); 0 without a penalty
    clip_value: float  # WGAN's weight clipping bound; 0 for none
    lsgan_abc: tuple[float, float, float]  # LSGAN's targets a, b, c
    ema: float  # decay of the generator's moving average; 0 for none
    lr_decay: bool  # both learning rates decay linearly to 0 over the run
    log_every: int  # generator steps between metrics lines (and evaluations)
    checkpoint_every: int  # generator steps between checkpoints
    eval_samples: int  # generated points the 2-D metrics use
    mode: str  # the steps' mode (fastgan.steps.MODES)
    lazy_every: int  # the penalty every k-th critic step (lazy regularization)
    dist_timeout: float  # seconds a multi-process run waits for a rank
    pack: int  # samples a critic scores together (PacGAN); 1 for none
    conditional: bool  # class-conditional, on an image set's labels
    spectral_norm: bool  # spectral normalization of the provided critic
    label_smoothing: float  # the ns loss's one-sided smoothing: real target 1 - label_smoothing
    precision: str  # "fp32" or "bf16" (fastgan.steps.precision)
    fid: int  # generated and real images FID and KID use at each log step; 0: off
    tensorboard: bool  # also log to OUT/tensorboard
    memory_format: str  # image layout: "auto", "channels_last" or "contiguous"
    noise: str = "normal"  # the generator's input distribution: "normal" or "uniform" on [-1, 1]
    download: bool = False  # fetch mnist or fashion-mnist through torchvision when missing
    protocol: str | None = None  # the published protocol the run follows (config.PROTOCOLS), or None
    data_root: str | None = None  # the image set's folder (None: the default, or none for 2-D sets)
    image_size: int | None = None  # images' side in pixels (None for 2-D sets)
    fid_weights: str | None = None  # the FID network's file (None: torch-fidelity's)
    augment: str | None = None  # DiffAugment's policy before the critic (fastgan.augment), or None
    ada_target: float | None = None  # ADA's target sign: the augmentation's p adapts from 0 (needs augment)
    lecam: float = 0.0  # LeCam's weight (fastgan.regularizers); 0: off
    bcr: float = 0.0  # bCR's weight of both terms (images); 0: off
    zcr: tuple[float, float] = (0.0, 0.0)  # zCR's critic and generator weights; 0: off

    @property
    def losses(self) -> Recipe:
        """The recipe's loss and penalty."""
        return RECIPES[self.recipe]

    def options(self) -> dict:
        """The settings by option name, as summary.json and checkpoints record them."""
        return {OPTION_NAMES.get(f.name, f.name): getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_options(cls, options: dict) -> Settings:
        """Settings from values by option name (:meth:`options`, or a checkpoint's); an option a file written
        before it existed lacks takes its default. Lists (from JSON) become tuples."""
        values = {}
        for f in fields(cls):
            name = OPTION_NAMES.get(f.name, f.name)
            if name in options:
                value = options[name]
                values[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

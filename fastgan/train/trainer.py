"""The training loop: critic and generator steps built from fastgan's fused losses, penalties and clipping."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import threading
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import fastgan
from fastgan import distributed
from fastgan.steps import auto_mode
from fastgan.steps.modes import GRAPH_MODES

from . import checkpoint as checkpoint_io
from . import rundir
from .config import RECIPES, TrainConfig, channels_last, check
from .data import TOY_SETS, ImageStream, ToyStream, load_image_dataset
from .image_metrics import ImageMetrics, cached_features, extract_features, file_sha1, inception, to_uint8
from .metrics import mode_metrics
from .models import (
    ConditionalGenerator,
    DCGANCritic,
    DCGANGenerator,
    InfoGANCritic,
    InfoGANGenerator,
    MLPCritic,
    MLPGenerator,
    PackedCritic,
    ProjectionCritic,
    ResNetCritic,
    ResNetGenerator,
    spectral_normalized,
)
from .plots import plot_curves, plot_samples_2d, png_array, save_image_grid

EVAL_SEED = 20240601  # the evaluation noise is fixed and drawn apart from the training RNG


def tensorboard_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``, or ``ValueError`` naming the package to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ValueError("--tensorboard needs the tensorboard package: pip install 'fastgan[tensorboard]'") from exc
    return SummaryWriter
EMBED_DIM = 16  # the conditional generator's class embedding
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + signal number


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run after a step; the checkpoint of that step was written."""

    def __init__(self, signum: int, step: int, out: Path):
        self.signum, self.step, self.out = signum, step, out
        super().__init__(f"interrupted by {signal.Signals(signum).name} after step {step}; its checkpoint is in "
                         f"{out}/: continue with --resume --out {out}")

    @property
    def exit_status(self) -> int:
        return SIGNAL_EXIT[self.signum]


class _StopRequest:
    """SIGINT and SIGTERM handlers (in the main thread) that ask the loop to stop after the current step; a
    second signal stops at once, as without them."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNAL_EXIT:
                self._previous[signum] = signal.signal(signum, self._ask)

    def _ask(self, signum, frame):
        self.signum = signum
        signal.signal(signum, self._previous[signum])

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but no CUDA device is available")
    if name == "cuda" and distributed.world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per local rank
    return torch.device(name)


def build_models(s: dict, sample_shape: tuple[int, ...], classes: int | None) -> tuple[nn.Module, nn.Module]:
    """The provided generator and critic for the settings ``s`` and data of ``sample_shape`` with ``classes``
    (None: unconditional): packed, spectrally normalised, conditional."""
    numel = 1
    for n in sample_shape:
        numel *= n
    pack, conditional = s["pack"], s["conditional"]
    latent = s["latent_dim"] + (EMBED_DIM if conditional else 0)
    if s["model"] in ("dcgan", "resnet", "infogan"):
        channels, size = sample_shape[0], sample_shape[-1]
    # A per-sample penalty needs a critic whose samples do not interact: LayerNorm, not BatchNorm; spectral
    # normalization takes the place of both (SNGAN's critics have no normalization layers).
    norm = "none" if s["spectral_norm"] else "layer" if RECIPES[s["loss"]][1] else "batch"
    if s["model"] == "dcgan":
        generator = DCGANGenerator(latent, channels, size)
        critic = DCGANCritic(pack * channels, size, norm=norm)
    elif s["model"] == "infogan":
        generator = InfoGANGenerator(latent, channels, size)
        critic = InfoGANCritic(pack * channels, size, norm=norm)
    elif s["model"] == "resnet":
        generator = ResNetGenerator(latent, channels, size, s["hidden"])
        critic = ResNetCritic(pack * channels, size, s["hidden"])
    else:
        toy = s["data"] in TOY_SETS
        generator = MLPGenerator(latent, numel, s["hidden"], s["depth"], tanh=not toy, out_shape=sample_shape)
        critic = MLPCritic(pack * numel, s["hidden"], s["depth"])
    if conditional:
        generator, critic = ConditionalGenerator(generator, classes, EMBED_DIM), ProjectionCritic(critic, classes)
    if s["spectral_norm"]:
        critic = spectral_normalized(critic)
    return generator, PackedCritic(critic, pack) if pack > 1 else critic


def latent_noise(s: dict, n: int, generator: torch.Generator | None = None,
                 device: torch.device | None = None) -> torch.Tensor:
    """(n, latent_dim) float32 generator inputs for the settings ``s``: N(0, I), or uniform on [-1, 1]
    (``noise="uniform"``), drawn from ``generator`` (or the default generator of ``device``)."""
    shape = (n, s["latent_dim"])
    if s.get("noise", "normal") == "uniform":
        return torch.rand(shape, generator=generator, device=device).mul_(2).sub_(1)
    return torch.randn(shape, generator=generator, device=device)


def device_memory(device: torch.device) -> int:
    """Bytes of memory on ``device``: the GPU's, or the machine's physical memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_fits(s: dict, sample_shape: tuple[int, ...], classes: int | None, device: torch.device) -> None:
    """``ValueError`` naming the size options when the provided models, with their gradients and Adam's two
    moments in fp32, would take more than ``device``'s memory (counted on models built on the meta device)."""
    with torch.device("meta"):
        generator, critic = build_models(s, sample_shape, classes)
    count = sum(p.numel() for m in (generator, critic) for p in m.parameters())
    need, have = 16 * count, device_memory(device)
    if need > have:
        raise ValueError(f"--model {s['model']} with --hidden {s['hidden']}, --depth {s['depth']}, --latent-dim "
                         f"{s['latent_dim']}: {count:,} parameters, {_size(need)} with gradients and optimizer "
                         f"state, more than the {_size(have)} of {device.type}")


def _size(n: int) -> str:
    return f"{n / 2**30:.0f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def evaluation_labels(n: int, classes: int) -> torch.Tensor:
    """(n,) int64 classes of evaluation samples: ``n // classes`` of each class in turn (then class 0 for the
    rest), so that an 8-wide grid of ``8 * classes`` shows one class per row."""
    return torch.arange(n) // max(n // classes, 1) % classes


@torch.no_grad()
def generate_samples(net: nn.Module, s: dict, n: int, device: torch.device, labels: torch.Tensor | None = None,
                     seed: int = EVAL_SEED) -> torch.Tensor:
    """``n`` samples of generator ``net`` (in eval mode, restored after) for the settings ``s``, from the noise
    of ``reference`` (default: the evaluation noise every FID of a run is computed on), in chunks of 4096, with the
    (n,) class ``labels`` of a conditional generator."""
    was_training = net.training
    net.eval()
    noise = latent_noise(s, n, generator=torch.Generator().manual_seed(seed)).to(device)
    chunks = [net(z) if labels is None else net(z, labels[i:i + z.shape[0]].to(device))
              for i, z in zip(range(0, n, 4096), noise.split(4096))]
    net.train(was_training)
    return torch.cat(chunks)


def make_optimizer(s: dict, params, device: torch.device, mode: str) -> torch.optim.Optimizer:
    """Adam or RMSprop as the settings say, made for the steps' resolved ``mode``."""
    adam = s["optimizer"] == "adam"
    if mode in GRAPH_MODES:
        # A captured step reads the learning rate from a device tensor (a graph would keep the first float).
        lr, options = torch.tensor(s["lr"], device=device), {"capturable": True}
    elif mode == "compile":
        # The compiled steps run Adam's and RMSprop's update inside their graph (fastgan.optimizer_update), which
        # reads a tensor rate at each call: each decayed float would recompile it.
        lr, options = torch.tensor(s["lr"]), {}
    elif adam:
        # Adam's fused kernel (CPU and CUDA): one kernel for every tensor instead of a loop over them.
        lr, options = s["lr"], {"fused": True}
    else:
        lr, options = s["lr"], {}
    if s["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, **options)
    return torch.optim.Adam(params, lr=lr, betas=tuple(s["betas"]), **options)


def load_optimizer(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """``optimizer.load_state_dict(saved)`` keeping this run's form of the update: a resumed run may change
    ``--mode``, and the saved groups would bring back the old one (a fused update, or a float rate, where a
    captured or compiled step needs a tensor rate; capturable or not, which also places the step counters)."""
    groups = []
    for mine, theirs in zip(optimizer.param_groups, saved["param_groups"]):
        rate = float(theirs["lr"])  # the decayed rate at the checkpoint
        lr = torch.full_like(mine["lr"], rate) if torch.is_tensor(mine["lr"]) else rate
        groups.append({**theirs, **{k: mine[k] for k in ("capturable", "fused") if k in mine}, "lr": lr})
    optimizer.load_state_dict({**saved, "param_groups": groups})


class Trainer:
    """One GAN run: ``Trainer(config, out_dir).fit()`` writes metrics, pictures, samples and checkpoints.

    ``out_dir`` must hold no other run (:mod:`fastgan.train.rundir`; ``RunDirError`` naming what it holds),
    unless ``resume=True``: the run continues from the checkpoint there (``CheckpointError`` when there is none,
    it is corrupt or unsafe, or ``config`` gives options that differ from it other than those in
    ``RESUME_SAFE``, or a ``steps`` the resumed run could not end as an uninterrupted one would); on CPU the
    result is bitwise the same as an uninterrupted run. ``overwrite=True`` removes the run in ``out_dir``
    when training starts. With ``fid`` set, ``fid_features`` replaces the Inception-v3 network FID and KID are
    computed on (a module mapping uint8 (B, 3, H, W) images to (B, F) features).

    SIGINT (Ctrl-C) and SIGTERM stop the run after the current step with a checkpoint of that step:
    :meth:`fit` raises :class:`Interrupted`, and ``resume=True`` continues as if nothing had happened.

    Started by ``torchrun --nproc_per_node N`` (or with ``torch.distributed`` already initialised), the run
    uses N processes: gloo on CPU, NCCL on CUDA with one GPU per local rank, ``batch_size`` split evenly over
    them, every random number drawn for the global batch and sliced, gradients averaged after every update.
    The model does not depend on N. Settings that differ between ranks are refused at the start; rank 0 alone
    shows progress and writes metrics, pictures, samples and checkpoints; a collective that fails or waits
    longer than ``dist_timeout`` seconds (a dead or hung rank) raises ``fastgan.distributed.CollectiveError``;
    a signal stops every rank at the next log step.
    """

    def __init__(self, config: TrainConfig, out_dir: str | Path, resume: bool = False, quiet: bool = False,
                 generator: nn.Module | None = None, critic: nn.Module | None = None, overwrite: bool = False,
                 fid_features: nn.Module | None = None):
        self.out = Path(out_dir)
        self.quiet, self.overwrite = quiet, overwrite
        rundir.check(self.out, resume, overwrite)
        checkpoint = checkpoint_io.load(self.out) if resume else None
        self._new_run = checkpoint is None
        if checkpoint is None:
            settings = config.resolved()
        else:
            settings = checkpoint_io.resume_settings(checkpoint["settings"], config.given(), checkpoint["step"])
            check(settings)
        self.s = settings
        self.device = _device(settings["device"])
        if settings["mode"] in GRAPH_MODES and self.device.type != "cuda":
            raise ValueError(f"--mode {settings['mode']} captures CUDA graphs: it needs a CUDA device")
        # Checked before joining the other ranks: a process leaving a joined group on an error aborts.
        self.local_batch = distributed.Shard(0, distributed.world_size()).local_size(settings["batch_size"],
                                                                                     "--batch-size")
        if self.local_batch % settings["pack"]:
            raise ValueError(f"--pack {settings['pack']} needs each process's batch ({self.local_batch}) to be a "
                             "multiple of it")
        if critic is not None and settings["pack"] > 1 and not isinstance(critic, PackedCritic):
            raise ValueError(f"--pack {settings['pack']} with your own critic: pass PackedCritic(critic, "
                             f"{settings['pack']}) (fastgan.train.models), a critic of packed inputs")
        if critic is not None and settings["spectral_norm"]:
            raise ValueError("spectral_norm normalises the provided critics: give your critic spectral norm itself "
                             "(fastgan.train.models.spectral_normalized) and set spectral_norm=False")
        self.group, self._owns_group = self._join_ranks()
        self.shard = distributed.Shard.of(self.group)
        self.is_main = self.shard.rank == 0
        torch.manual_seed(settings["seed"])
        self.data = self._data()
        self.classes = self.data.classes if settings["conditional"] else None
        if settings["conditional"] and not self.classes:
            raise ValueError(f"--conditional: the {settings['data']} data has no class labels")
        if settings["conditional"] and self.classes < 2:
            raise ValueError(f"--conditional needs at least 2 classes: the {settings['data']} data under --data-root "
                             f"{settings.get('data_root')} has {self.classes} (one subfolder per class)")
        if generator is None or critic is None:
            _check_fits(settings, self.data.sample_shape, self.classes, self.device)
            default_generator, default_critic = build_models(settings, self.data.sample_shape, self.classes)
            generator, critic = generator or default_generator, critic or default_critic
        self.generator, self.critic = generator.to(self.device), critic.to(self.device)
        self.channels_last = channels_last(settings, self.device, self.critic, self.data.sample_shape)
        if self.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.critic.to(memory_format=torch.channels_last)
        # One mode for both steps and their optimizers (auto: graph on one GPU; with ranks, compile; on a CPU,
        # compile, or eager for a conv critic).
        self.mode = auto_mode(self.device, self.group, self.critic) if settings["mode"] == "auto" else settings["mode"]
        self.opt_g = make_optimizer(settings, self.generator.parameters(), self.device, self.mode)
        self.opt_d = make_optimizer(settings, self.critic.parameters(), self.device, self.mode)
        loss, penalty = RECIPES[settings["loss"]]
        targets = tuple(settings["lsgan_abc"])
        self.critic_step_fn = fastgan.CriticStep(
            self.critic, self.opt_d, loss=loss, penalty=penalty, penalty_weight=settings["penalty_weight"],
            clip_value=settings["clip_value"] or None, lazy_every=settings["lazy_every"], mode=self.mode,
            precision=settings["precision"], lsgan_targets=targets, label_smoothing=settings["label_smoothing"],
            process_group=self.group)
        self.generator_step_fn = fastgan.GeneratorStep(
            self.generator, self.critic, self.opt_g, loss=loss, ema=settings["ema"] or None, mode=self.mode,
            precision=settings["precision"], lsgan_targets=targets, process_group=self.group)
        self.ema = self.generator_step_fn.ema
        # Built before training starts, so that missing weights or packages stop the run before any step.
        self.image_metrics = self._image_metrics(fid_features) if settings["fid"] and self.is_main else None
        self._writer = None
        if settings["tensorboard"] and self.is_main:
            tensorboard_writer_class()
        self.step = 0
        self.history: list[dict] = []
        self._resumed_seconds = 0.0
        self.best: dict | None = None  # the lowest FID so far and its step (best.pt)
        if checkpoint is not None:
            self._restore(checkpoint)

    # ----- processes -----

    def _join_ranks(self) -> tuple[dist.ProcessGroup | None, bool]:
        """The process group of a multi-process run (joined here when torchrun started this process)."""
        owns = False
        if not dist.is_initialized():
            if not distributed.launched():
                return None, False
            distributed.init_from_environment(self.device.type, self.s["dist_timeout"])
            owns = True
        try:
            distributed.same_settings(self.s)
        except Exception:
            if owns:
                dist.destroy_process_group()
            raise
        return dist.group.WORLD, owns

    def close(self) -> None:
        """Leave the process group this trainer joined (``fit`` does it when it ends)."""
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False

    # ----- data and evaluation -----

    def _data(self):
        s = self.s
        if s["data"] in TOY_SETS:
            return ToyStream(s["data"], s["batch_size"], s["seed"], self.device, self.shard)
        dataset = load_image_dataset(s["data"], s.get("data_root"), s["image_size"], download=s["download"])
        return ImageStream(dataset, s["batch_size"], s["seed"], self.device, shard=self.shard)

    def _noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training noise for this rank's ``n`` rows (drawn for every rank's), or ``n`` rows from ``generator``
        (on the CPU): N(0, I), or uniform on [-1, 1] with ``noise="uniform"``."""
        if generator is None:
            return self.shard.rows(latent_noise(self.s, n * self.shard.world_size, device=self.device))
        return latent_noise(self.s, n, generator=generator).to(self.device)

    def _fake_labels(self, n: int) -> torch.Tensor | None:
        """Uniformly drawn classes for this rank's ``n`` generated samples (drawn for every rank's), or None for
        an unconditional run."""
        if self.classes is None:
            return None
        return self.shard.rows(torch.randint(self.classes, (n * self.shard.world_size,), device=self.device))

    def _generate(self, net: nn.Module, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return net(z) if labels is None else net(z, labels)

    def sample_labels(self, n: int) -> torch.Tensor | None:
        """The classes of :meth:`generate`'s ``n`` samples (:func:`evaluation_labels`); None if unconditional."""
        return None if self.classes is None else evaluation_labels(n, self.classes).to(self.device)

    def generate(self, n: int) -> torch.Tensor:
        """``n`` samples from the EMA generator (or the generator) with the fixed evaluation noise (and, for a
        conditional run, :meth:`sample_labels`)."""
        net = self.ema if self.ema is not None else self.generator
        return generate_samples(net, self.s, n, self.device, self.sample_labels(n))

    def _image_metrics(self, features: nn.Module | None) -> ImageMetrics:
        """FID and KID against ``fid`` real images: the first ``fid`` of Fashion-MNIST's test split (all of it at
        10,000; the first N, so that anyone can score a run's samples against the same images), a subset of the
        training images drawn with the evaluation seed for the other sets. Their features are cached on disk per
        (data set, split, N, network file, image size) when the network is read from a file."""
        s = self.s
        n, split = s["fid"], "test" if s["data"] == "fashion-mnist" else "train"
        dataset = self.data.dataset if split == "train" else load_image_dataset(
            s["data"], s.get("data_root"), s["image_size"], download=s["download"], split=split)
        if n > len(dataset):
            raise ValueError(f"--fid {n}: the {split} images of {s['data']} are {len(dataset)}")
        if split == "test":
            indices = torch.arange(n)
        else:
            indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(EVAL_SEED))[:n]
        held = getattr(dataset, "images", None)
        if torch.is_tensor(held) and held.dtype == torch.uint8:
            real = held[indices]
        else:
            real = to_uint8(torch.stack([dataset[int(i)][0] for i in indices]))
        quiet = self.quiet
        if features is not None:
            network = features.to(self.device)
            real_features = extract_features(network, real, self.device, quiet, "real images' features")
            return ImageMetrics(network, real_features, self.device, quiet)
        network = inception(s["fid_weights"]).to(self.device)
        weights = f"sha1-{file_sha1(s['fid_weights'])}" if s["fid_weights"] else INCEPTION_WEIGHTS
        root = "" if s["data"] == "fashion-mnist" else "-" + hashlib.sha1(
            str(Path(s.get("data_root") or "").resolve()).encode()).hexdigest()[:12]
        key = f"{s['data']}{root}-{split}-n{n}-{s['image_size']}px-{weights}"
        real_features = cached_features(key, lambda: extract_features(network, real, self.device, quiet,
                                                                      "real images' features"))
        return ImageMetrics(network, real_features, self.device, quiet)

    def evaluate(self) -> dict:
        """Mode metrics on ``eval_samples`` generated points (2-D mixtures), FID and KID on ``fid`` generated
        images (image data with ``fid``)."""
        modes = getattr(self.data, "modes", None)
        if modes is not None:
            return mode_metrics(self.generate(self.s["eval_samples"]), modes)
        if self.image_metrics is not None:
            return self.image_metrics(self.generate(self.s["fid"]))
        return {}

    # ----- steps -----

    def critic_step(self) -> dict:
        """One critic step on the next real batch and a fresh generated one; detached statistics."""
        real, labels = self.data.next_batch()
        if self.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        noise, fake_labels = self._noise(real.shape[0]), self._fake_labels(real.shape[0])
        with torch.no_grad():
            fake = self._generate(self.generator, noise, fake_labels)
        if self.classes is None:
            stats = self.critic_step_fn(real, fake)
        else:
            stats = self.critic_step_fn(real, fake, labels=labels, fake_labels=fake_labels)
        stats["d_loss"] = stats.pop("loss")
        return stats

    def generator_step(self) -> torch.Tensor:
        """One generator step (and its EMA update); the detached loss."""
        noise, labels = self._noise(self.local_batch), self._fake_labels(self.local_batch)
        return self.generator_step_fn(noise, labels=labels)["loss"]

    # ----- the run -----

    def fit(self) -> dict:
        """Train up to ``steps`` generator steps; returns the summary (rank 0 also writes ``summary.json``).
        Raises :class:`Interrupted` after a SIGINT or SIGTERM (with the checkpoint of the last step written)."""
        stop = _StopRequest()
        try:
            return self._fit(stop)
        except distributed.CollectiveError:
            self._owns_group = False  # a group with a lost rank is not destroyed: that can hang or abort
            raise
        finally:
            stop.restore()
            if self._writer is not None:
                self._writer.close()
            self.close()

    def _fit(self, stop: _StopRequest) -> dict:
        from tqdm.auto import tqdm

        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.overwrite:
                rundir.clear(self.out)
            if self._new_run:
                rundir.claim(self.out)
            self._rewrite_metrics()
            if self.s["tensorboard"]:
                # A resumed run drops the events logged after its checkpoint, as metrics.jsonl does.
                self._writer = tensorboard_writer_class()(str(self.out / "tensorboard"), purge_step=self.step + 1)
        s = self.s
        self._started = last_time = time.perf_counter()
        last_step = self.step
        # Wall-clock seconds of training so far, evaluation left out (a resumed run continues its predecessor's
        # count): what FID is plotted against.
        train_seconds = self.history[-1].get("wall_seconds", 0.0) if self.history else 0.0
        with tqdm(total=s["steps"], initial=self.step, disable=self.quiet or not self.is_main,
                  desc=f"{s['loss']} on {s['data']}", dynamic_ncols=True) as bar:
            while self.step < s["steps"]:
                if s["lr_decay"]:
                    self._set_lr(s["lr"] * (1 - self.step / s["steps"]))
                for _ in range(s["n_critic"]):
                    stats = self.critic_step()
                g_loss = self.generator_step()
                self.step += 1
                bar.update(1)
                logged = self.step % s["log_every"] == 0 or self.step == s["steps"]
                if logged:
                    now = time.perf_counter()
                    train_seconds += now - last_time
                    record = self._log(stats, g_loss, (self.step - last_step) / (now - last_time), train_seconds)
                    last_time, last_step = time.perf_counter(), self.step
                    bar.set_postfix({k: f"{record[k]:.3g}" for k in ("d_loss", "g_loss", "high_quality")
                                     if k in record})
                stopping = self._stopping(stop, logged)
                if self.is_main and (stopping or self.step % s["checkpoint_every"] == 0 or self.step == s["steps"]):
                    self._save_checkpoint()
                if stopping:
                    raise Interrupted(stop.signum or signal.SIGTERM, self.step, self.out)
        return self._finish(self._elapsed())

    def _stopping(self, stop: _StopRequest, logged: bool) -> bool:
        """Whether the run stops after this step: a signal arrived (with several processes: at any rank, agreed
        on at log steps, so that every rank stops after the same step)."""
        if self.group is None:
            return stop.signum is not None
        if not logged:
            return False
        return distributed.any_rank(stop.signum is not None, self.group, self.device)

    def _set_lr(self, lr: float) -> None:
        for optimizer in (self.opt_g, self.opt_d):
            for group in optimizer.param_groups:
                if torch.is_tensor(group["lr"]):
                    group["lr"].fill_(lr)  # in place: compiled and captured steps read this tensor
                else:
                    group["lr"] = lr

    def _log(self, stats: dict, g_loss: torch.Tensor, steps_per_second: float, wall_seconds: float) -> dict:
        stats = {**stats, "g_loss": g_loss}
        if self.group is not None:
            stats = distributed.reduce_stats(stats, self.group)  # every rank's batch: the global statistics
        record = {"step": self.step, "steps_per_second": steps_per_second, "wall_seconds": wall_seconds,
                  **{k: v.item() for k, v in stats.items()}}
        if self.is_main:
            record.update(self.evaluate())
            if "fid" in record and (self.best is None or record["fid"] < self.best["fid"]):
                self._save_best(record["fid"])
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if self._writer is not None:
                self._log_tensorboard(record)
        self.history.append(record)
        return record

    def _log_tensorboard(self, record: dict) -> None:
        """The record's numbers as scalars and, for image data, a grid of the evaluation samples."""
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                self._writer.add_scalar(key, value, self.step)
        if self.s["data"] not in TOY_SETS:
            images = self.generate(8 * (self.classes or 8))
            self._writer.add_images("samples", (images.float().clamp(-1, 1) + 1) / 2, self.step)

    def _rewrite_metrics(self) -> None:
        # A resumed run keeps the lines up to its checkpoint and drops any written after it.
        path = self.out / "metrics.jsonl"
        lines = [json.dumps(h) for h in self.history]
        path.write_text("".join(line + "\n" for line in lines))

    def _finish(self, wall_seconds: float) -> dict:
        s = self.s
        final = self.history[-1] if self.history else {}
        summary = {
            "final": final,
            "best": self.best,
            "settings": s,
            "steps": self.step,
            "wall_seconds": wall_seconds,
            "device": str(self.device) if self.device.type == "cpu" else torch.cuda.get_device_name(self.device),
            "world_size": self.shard.world_size,
            "backend": dist.get_backend(self.group) if self.group is not None else None,
            "versions": {"fastgan": fastgan.__version__, "torch": torch.__version__, "python": platform.python_version()},
        }
        if not self.is_main:
            return summary
        samples = self.generate(s["eval_samples"] if s["data"] in TOY_SETS else 8 * (self.classes or 8))
        torch.save(samples.cpu(), self.out / "samples.pt")
        if s["data"] in TOY_SETS:
            real = self.data.sample(s["eval_samples"], torch.Generator().manual_seed(EVAL_SEED))
            title = f"{s['loss']} on {s['data']}, step {self.step}"
            if "modes" in final:
                title += (f": {final['modes']}/{final['total_modes']} modes, "
                          f"{100 * final['high_quality']:.1f}% high quality")
            plot_samples_2d(samples.cpu(), real, self.data.modes, self.out / "samples.png", title)
        else:
            save_image_grid(samples, self.out / "samples.png", self.data.class_names if self.classes else None)
        plot_curves(self.history, self.out / "curves.png")
        if self._writer is not None:
            for name in ("samples", "curves"):
                self._writer.add_image(f"{name}.png", png_array(self.out / f"{name}.png"), self.step, dataformats="HWC")
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        return summary

    # ----- checkpoints -----

    def _save_checkpoint(self) -> None:
        state = {
            **self._generator_state(),
            "critic": self.critic.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "data": self.data.state_dict(),
            "history": self.history,
            "wall_seconds": self._elapsed(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        checkpoint_io.save(state, self.out)

    def _elapsed(self) -> float:
        """Wall-clock seconds of the run so far, evaluations included (a resumed run continues its predecessor's
        count, as of its checkpoint)."""
        return self._resumed_seconds + time.perf_counter() - self._started

    def _generator_state(self) -> dict:
        """What ``fastgan sample`` needs to rebuild and run the generator."""
        return {"settings": self.s, "step": self.step, "generator": self.generator.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "sample_shape": list(self.data.sample_shape), "classes": self.classes}

    def _save_best(self, fid: float) -> None:
        self.best = {"fid": fid, "step": self.step}
        checkpoint_io.save_best({**self._generator_state(), "fid": fid}, self.out)

    def _restore(self, state: dict) -> None:
        self.step = state["step"]
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        load_optimizer(self.opt_g, state["opt_g"])
        load_optimizer(self.opt_d, state["opt_d"])
        self.data.load_state_dict(state["data"])
        self.history = state["history"]
        self._resumed_seconds = state.get("wall_seconds", 0.0)  # checkpoints before 2026-12-05 lack it
        scored = [h for h in self.history if "fid" in h]
        if scored:
            best = min(scored, key=lambda h: h["fid"])
            self.best = {"fid": best["fid"], "step": best["step"]}
        # The steps' schedules (lazy penalty, EMA warm-up) continue where they stopped.
        self.critic_step_fn.calls = self.step * self.s["n_critic"]
        self.generator_step_fn.calls = self.step
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])


def train(config: TrainConfig | None = None, out_dir: str | Path = "runs/fastgan", *, resume: bool = False,
          quiet: bool = False, generator: nn.Module | None = None, critic: nn.Module | None = None,
          overwrite: bool = False, fid_features: nn.Module | None = None) -> dict:
    """Train a GAN with fastgan's fused stabilizers; returns the run's summary.

    Args:
        config: the run's settings (defaults: WGAN-GP on the 8-Gaussian ring).
        out_dir: where metrics.jsonl, summary.json, samples.png, curves.png, samples.pt and the checkpoint go;
            it must hold no other run unless ``resume`` or ``overwrite``.
        resume: continue from ``out_dir``'s checkpoint (see :class:`Trainer` for what may change).
        quiet: no progress bar.
        generator, critic: your own modules instead of the provided ones (the generator maps
            (B, latent_dim) noise to samples of the data's shape; the critic maps them to (B, 1) scores; with
            ``conditional`` they take the (B,) class labels as a second argument).
        overwrite: replace the run in ``out_dir``.
        fid_features: the feature network of ``fid`` (default: Inception-v3, :mod:`fastgan.train.image_metrics`).
    """
    return Trainer(config or TrainConfig(), out_dir, resume=resume, quiet=quiet, generator=generator,
                   critic=critic, overwrite=overwrite, fid_features=fid_features).fit()

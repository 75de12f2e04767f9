"""The training loop: critic and generator steps built from fastgan's fused losses, penalties and clipping, on the
run's data, with its parts (:mod:`.building`, :mod:`.evaluation`, :mod:`.resume`, :mod:`.signals`,
:mod:`.processes`) assembled."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import torch
from torch import nn

import fastgan
from fastgan import distributed
from fastgan.regularizers import ZCR_SIGMA
from fastgan.steps import auto_mode
from fastgan.steps.modes import GRAPH_MODES

from . import checkpoint as checkpoint_io
from . import rundir
from .building import build_models, check_fits, latent_noise, make_optimizer
from .config import TrainConfig, channels_last, check
from .data import TOY_SETS, ImageStream, ToyStream, load_image_dataset
from .evaluation import RunLog, evaluation_labels, generate_samples
from .models import PackedCritic
from .processes import Membership, run_device
from .resume import restore_checkpoint, save_checkpoint
from .settings import Settings
from .signals import Interrupted, StopRequest


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
    :meth:`fit` raises :class:`~fastgan.train.signals.Interrupted`, and ``resume=True`` continues as if nothing
    had happened.

    Started by ``torchrun --nproc_per_node N`` (or with ``torch.distributed`` already initialised), the run
    uses N processes: gloo on CPU, NCCL on CUDA with one GPU per local rank, ``batch_size`` split evenly over
    them, every random number drawn for the global batch and sliced, gradients averaged after every update.
    The model does not depend on N. Settings that differ between ranks are refused at the start; rank 0 alone
    shows progress and writes metrics, pictures, samples and checkpoints; a collective that fails or waits
    longer than ``dist_timeout`` seconds (a dead or hung rank) raises ``fastgan.distributed.CollectiveError``;
    a signal stops every rank at the next log step.

    Its parts: ``settings`` (:class:`~fastgan.train.settings.Settings`), ``data``, the modules and optimizers,
    ``critic_update`` and ``generator_update`` (the :class:`fastgan.CriticStep` and :class:`fastgan.GeneratorStep`
    that :meth:`critic_step` and :meth:`generator_step` feed), ``log`` (:class:`~fastgan.train.evaluation.RunLog`)
    and ``processes`` (:class:`~fastgan.train.processes.Membership`).
    """

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | Path,
        resume: bool = False,
        quiet: bool = False,
        generator: nn.Module | None = None,
        critic: nn.Module | None = None,
        overwrite: bool = False,
        fid_features: nn.Module | None = None,
    ):
        self.out = Path(out_dir)
        self.quiet, self.overwrite = quiet, overwrite
        rundir.check(self.out, resume, overwrite)
        checkpoint = checkpoint_io.load(self.out) if resume else None
        self._new_run = checkpoint is None
        if checkpoint is None:
            s = config.resolved()
        else:
            options = checkpoint_io.resume_settings(checkpoint["settings"], config.given(), checkpoint["step"])
            check(options)
            s = Settings.from_options(options)
        self.settings = s
        self.device = run_device(s.device)
        if s.mode in GRAPH_MODES and self.device.type != "cuda":
            raise ValueError(f"--mode {s.mode} captures CUDA graphs: it needs a CUDA device")
        # Checked before joining the other ranks: a process leaving a joined group on an error aborts.
        self.local_batch = distributed.Shard(0, distributed.world_size()).local_size(s.batch_size, "--batch-size")
        if self.local_batch % s.pack:
            raise ValueError(f"--pack {s.pack} needs each process's batch ({self.local_batch}) to be a multiple of it")
        if critic is not None and s.pack > 1 and not isinstance(critic, PackedCritic):
            raise ValueError(
                f"--pack {s.pack} with your own critic: pass PackedCritic(critic, {s.pack}) "
                "(fastgan.train.models), a critic of packed inputs"
            )
        if critic is not None and s.spectral_norm:
            raise ValueError(
                "spectral_norm normalises the provided critics: give your critic spectral norm itself "
                "(fastgan.train.models.spectral_normalized) and set spectral_norm=False"
            )
        self.processes = Membership(s, self.device)
        self.group = self.processes.group
        self.shard = distributed.Shard.of(self.group)
        self.is_main = self.shard.rank == 0
        torch.manual_seed(s.seed)
        self.data = self._data()
        self.classes = self.data.classes if s.conditional else None
        if s.conditional and not self.classes:
            raise ValueError(f"--conditional: the {s.data} data has no class labels")
        if s.conditional and self.classes < 2:
            raise ValueError(
                f"--conditional needs at least 2 classes: the {s.data} data under --data-root "
                f"{s.data_root} has {self.classes} (one subfolder per class)"
            )
        if generator is None or critic is None:
            check_fits(s, self.data.sample_shape, self.classes, self.device)
            default_generator, default_critic = build_models(s, self.data.sample_shape, self.classes)
            generator, critic = generator or default_generator, critic or default_critic
        self.generator, self.critic = generator.to(self.device), critic.to(self.device)
        self.channels_last = channels_last(s, self.device, self.critic, self.data.sample_shape)
        if self.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.critic.to(memory_format=torch.channels_last)
        # One mode for both steps and their optimizers (auto: graph on one GPU; with ranks, compile; on a CPU,
        # compile, or eager for a conv critic).
        self.mode = auto_mode(self.device, self.group, self.critic) if s.mode == "auto" else s.mode
        self.opt_g = make_optimizer(s, self.generator.parameters(), self.device, self.mode)
        self.opt_d = make_optimizer(s, self.critic.parameters(), self.device, self.mode)
        recipe = s.losses
        self.augment = None
        if s.augment is not None:  # ADA starts from p = 0 and adapts; DiffAugment augments every image
            adaptive = s.ada_target is not None
            self.augment = fastgan.Augment(s.augment, probability=0.0 if adaptive else 1.0, target=s.ada_target)
        self.critic_update = fastgan.CriticStep(
            self.critic,
            self.opt_d,
            loss=recipe.loss,
            penalty=recipe.penalty,
            penalty_weight=s.penalty_weight,
            clip_value=s.clip_value or None,
            lazy_every=s.lazy_every,
            mode=self.mode,
            precision=s.precision,
            lsgan_targets=s.lsgan_abc,
            label_smoothing=s.label_smoothing,
            augment=self.augment,
            lecam_weight=s.lecam,
            bcr_weight=s.bcr,
            zcr_weight=s.zcr[0],
            process_group=self.group,
        )
        self.generator_update = fastgan.GeneratorStep(
            self.generator,
            self.critic,
            self.opt_g,
            loss=recipe.loss,
            ema=s.ema or None,
            mode=self.mode,
            precision=s.precision,
            augment=self.augment,
            zcr_weight=s.zcr[1],
            lsgan_targets=s.lsgan_abc,
            process_group=self.group,
        )
        self.ema = self.generator_update.ema
        self.lecam = self.critic_update.lecam  # LeCam's averages, checkpointed
        self.step = 0
        self._last_real: tuple[torch.Tensor, torch.Tensor | None] | None = None  # (real batch, labels or None)
        self.resumed_seconds = 0.0  # a resumed run's predecessor's wall-clock seconds
        self.log = RunLog(self, fid_features)
        if checkpoint is not None:
            restore_checkpoint(self, checkpoint)

    def close(self) -> None:
        """Leave the process group this trainer joined (``fit`` does it when it ends)."""
        self.processes.leave()

    # Data and samples.

    def _data(self) -> ToyStream | ImageStream:
        s = self.settings
        if s.data in TOY_SETS:
            return ToyStream(s.data, s.batch_size, s.seed, self.device, self.shard)
        dataset = load_image_dataset(s.data, s.data_root, s.image_size, download=s.download)
        return ImageStream(dataset, s.batch_size, s.seed, self.device, shard=self.shard)

    def noise(self, n: int) -> torch.Tensor:
        """Training noise for this rank's ``n`` rows (drawn for every rank's): N(0, I), or uniform on [-1, 1]
        with ``noise="uniform"``."""
        return self.shard.rows(latent_noise(self.settings, n * self.shard.world_size, device=self.device))

    def _fake_labels(self, n: int) -> torch.Tensor | None:
        """Uniformly drawn classes for this rank's ``n`` generated samples (drawn for every rank's), or None for
        an unconditional run."""
        if self.classes is None:
            return None
        return self.shard.rows(torch.randint(self.classes, (n * self.shard.world_size,), device=self.device))

    def sample_labels(self, n: int) -> torch.Tensor | None:
        """The classes of :meth:`generate`'s ``n`` samples (:func:`evaluation_labels`); None if unconditional."""
        return None if self.classes is None else evaluation_labels(n, self.classes).to(self.device)

    def generate(self, n: int) -> torch.Tensor:
        """``n`` samples from the EMA generator (or the generator) with the fixed evaluation noise (and, for a
        conditional run, :meth:`sample_labels`)."""
        net = self.ema if self.ema is not None else self.generator
        return generate_samples(net, self.settings, n, self.device, self.sample_labels(n))

    def evaluate(self) -> dict:
        """The run's evaluation now (:meth:`.evaluation.RunLog.evaluate`)."""
        return self.log.evaluate()

    # The steps.

    def critic_step(self) -> dict:
        """One critic step on the next real batch and a fresh generated one; detached statistics."""
        real, labels = self.data.next_batch()
        if self.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        noise, fake_labels = self.noise(real.shape[0]), self._fake_labels(real.shape[0])
        conditioning = () if fake_labels is None else (fake_labels,)
        moved = None
        with torch.no_grad():
            fake = self.generator(noise, *conditioning)
            if self.settings.zcr[0]:  # zCR: the same latents moved by N(0, sigma^2)
                moved = self.generator(noise + ZCR_SIGMA * torch.randn_like(noise), *conditioning)
        extra = {} if moved is None else {"fake_moved": moved}
        if self.classes is None:
            stats = self.critic_update(real, fake, **extra)
        else:
            stats = self.critic_update(real, fake, labels=labels, fake_labels=fake_labels, **extra)
        self._last_real = (real, labels if self.classes is not None else None)
        stats["d_loss"] = stats.pop("loss")
        return stats

    def generator_step(self) -> torch.Tensor:
        """One generator step (and its EMA update); the detached loss. A relativistic loss compares with the last
        critic step's real batch (R3GAN's loop: one real batch an iteration), drawing no data of its own."""
        noise, labels = self.noise(self.local_batch), self._fake_labels(self.local_batch)
        if not self.generator_update.terms.relativistic:
            return self.generator_update(noise, labels=labels)["loss"]
        assert self._last_real is not None  # a generator step follows n_critic >= 1 critic steps
        real, real_labels = self._last_real
        return self.generator_update(noise, labels=labels, real=real, real_labels=real_labels)["loss"]

    # The run.

    def fit(self) -> dict:
        """Train up to ``steps`` generator steps; returns the summary (rank 0 also writes ``summary.json``).
        Raises :class:`~fastgan.train.signals.Interrupted` after a SIGINT or SIGTERM (with the checkpoint of the
        last step written)."""
        stop = StopRequest()
        try:
            return self._fit(stop)
        except distributed.CollectiveError:
            self.processes.lost()
            raise
        finally:
            stop.restore()
            self.log.close()
            self.close()

    def _fit(self, stop: StopRequest) -> dict:
        from tqdm.auto import tqdm

        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.overwrite:
                rundir.clear(self.out)
            if self._new_run:
                rundir.claim(self.out)
            self.log.open()
        s = self.settings
        self._started = last_time = time.perf_counter()
        last_step = self.step
        # Wall-clock seconds of training so far, evaluation left out (a resumed run continues its predecessor's
        # count): what FID is plotted against.
        history = self.log.history
        train_seconds = history[-1].get("wall_seconds", 0.0) if history else 0.0
        with tqdm(
            total=s.steps,
            initial=self.step,
            disable=self.quiet or not self.is_main,
            desc=f"{s.recipe} on {s.data}",
            dynamic_ncols=True,
        ) as bar:
            while self.step < s.steps:
                if s.lr_decay:
                    self._set_lr(s.lr * (1 - self.step / s.steps))
                for _ in range(s.n_critic):
                    stats = self.critic_step()
                g_loss = self.generator_step()
                self.step += 1
                bar.update(1)
                logged = self.step % s.log_every == 0 or self.step == s.steps
                if logged:
                    now = time.perf_counter()
                    train_seconds += now - last_time
                    record = self.log.record(stats, g_loss, (self.step - last_step) / (now - last_time), train_seconds)
                    last_time, last_step = time.perf_counter(), self.step
                    bar.set_postfix(
                        {k: f"{record[k]:.3g}" for k in ("d_loss", "g_loss", "high_quality") if k in record}
                    )
                stopping = self._stopping(stop, logged)
                if self.is_main and (stopping or self.step % s.checkpoint_every == 0 or self.step == s.steps):
                    save_checkpoint(self)
                if stopping:
                    raise Interrupted(stop.signum or signal.SIGTERM, self.step, self.out)
        return self.log.finish(self.elapsed())

    def _stopping(self, stop: StopRequest, logged: bool) -> bool:
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

    def elapsed(self) -> float:
        """Wall-clock seconds of the run so far, evaluations included (a resumed run continues its predecessor's
        count, as of its checkpoint)."""
        return self.resumed_seconds + time.perf_counter() - self._started


def train(
    config: TrainConfig | None = None,
    out_dir: str | Path = "runs/fastgan",
    *,
    resume: bool = False,
    quiet: bool = False,
    generator: nn.Module | None = None,
    critic: nn.Module | None = None,
    overwrite: bool = False,
    fid_features: nn.Module | None = None,
) -> dict:
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
    return Trainer(
        config or TrainConfig(),
        out_dir,
        resume=resume,
        quiet=quiet,
        generator=generator,
        critic=critic,
        overwrite=overwrite,
        fid_features=fid_features,
    ).fit()

"""Evaluation and logging of a run: the fixed evaluation noise and samples, the mode metrics of 2-D data or FID
and KID of images, metrics.jsonl, TensorBoard, the lowest-FID generator (best.pt), and the summary and pictures
a finished run leaves."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn

import fastgan

from .. import distributed
from .building import latent_noise
from .data import TOY_SETS, load_image_dataset
from .image_metrics import (
    INCEPTION_WEIGHTS,
    ImageMetrics,
    cached_features,
    extract_features,
    file_sha1,
    inception,
    to_uint8,
)
from .metrics import mode_metrics
from .plots import plot_curves, plot_samples_2d, png_array, save_image_grid
from .resume import save_best
from .settings import Settings

if TYPE_CHECKING:
    from .trainer import Trainer

EVAL_SEED = 20240601  # the evaluation noise is fixed and drawn apart from the training RNG


def evaluation_labels(n: int, classes: int) -> torch.Tensor:
    """(n,) int64 classes of evaluation samples: ``n // classes`` of each class in turn (then class 0 for the
    rest), so that an 8-wide grid of ``8 * classes`` shows one class per row."""
    return torch.arange(n) // max(n // classes, 1) % classes


@torch.no_grad()
def generate_samples(
    net: nn.Module, s: Settings, n: int, device: torch.device, labels: torch.Tensor | None = None, seed: int = EVAL_SEED
) -> torch.Tensor:
    """``n`` samples of generator ``net`` (in eval mode, restored after) for the settings ``s``, from the noise
    of ``seed`` (default: the evaluation noise every FID of a run is computed on), in chunks of 4096, with the
    (n,) class ``labels`` of a conditional generator."""
    was_training = net.training
    net.eval()
    noise = latent_noise(s, n, generator=torch.Generator().manual_seed(seed)).to(device)
    chunks = [
        net(z) if labels is None else net(z, labels[i : i + z.shape[0]].to(device))
        for i, z in zip(range(0, n, 4096), noise.split(4096))
    ]
    net.train(was_training)
    return torch.cat(chunks)


def tensorboard_writer_class() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, or ``ValueError`` naming the package to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ValueError("--tensorboard needs the tensorboard package: pip install 'fastgan[tensorboard]'") from exc
    return SummaryWriter


def real_image_metrics(
    s: Settings, train_images: object, device: torch.device, quiet: bool, features: nn.Module | None
) -> ImageMetrics:
    """FID and KID against ``fid`` real images: the first ``fid`` of Fashion-MNIST's test split (all of it at
    10,000; the first N, so that anyone can score a run's samples against the same images), a subset of the
    training images (``train_images``, the run's data set) drawn with the evaluation seed for the other sets.
    Their features are cached on disk per (data set, split, N, network file, image size) when the network is
    read from a file. ``features``: a network to use instead of Inception-v3."""
    n, split = s.fid, "test" if s.data == "fashion-mnist" else "train"
    dataset = (
        train_images
        if split == "train"
        else load_image_dataset(s.data, s.data_root, s.image_size, download=s.download, split=split)
    )
    if n > len(dataset):
        raise ValueError(f"--fid {n}: the {split} images of {s.data} are {len(dataset)}")
    if split == "test":
        indices = torch.arange(n)
    else:
        indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(EVAL_SEED))[:n]
    held = getattr(dataset, "images", None)
    if torch.is_tensor(held) and held.dtype == torch.uint8:
        real = held[indices]
    else:
        real = to_uint8(torch.stack([dataset[int(i)][0] for i in indices]))
    if features is not None:
        network = features.to(device)
        real_features = extract_features(network, real, device, quiet, "real images' features")
        return ImageMetrics(network, real_features, device, quiet)
    network = inception(s.fid_weights).to(device)
    weights = f"sha1-{file_sha1(s.fid_weights)}" if s.fid_weights else INCEPTION_WEIGHTS
    root = (
        ""
        if s.data == "fashion-mnist"
        else "-" + hashlib.sha1(str(Path(s.data_root or "").resolve()).encode()).hexdigest()[:12]
    )
    key = f"{s.data}{root}-{split}-n{n}-{s.image_size}px-{weights}"
    real_features = cached_features(
        key, lambda: extract_features(network, real, device, quiet, "real images' features")
    )
    return ImageMetrics(network, real_features, device, quiet)


class RunLog:
    """What a run records of ``trainer``: every log step's line (metrics.jsonl, TensorBoard), its evaluation,
    the lowest FID so far and its generator (best.pt), and at the end summary.json and the pictures. Only the
    main process writes. Built before training starts, so that missing weights or packages stop the run before
    any step."""

    def __init__(self, trainer: Trainer, fid_features: nn.Module | None):
        self.trainer, s = trainer, trainer.settings
        self.out = trainer.out
        self.image_metrics = (
            real_image_metrics(s, getattr(trainer.data, "dataset", None), trainer.device, trainer.quiet, fid_features)
            if s.fid and trainer.is_main
            else None
        )
        if s.tensorboard and trainer.is_main:
            tensorboard_writer_class()
        self.writer = None
        self.history: list[dict] = []
        self.best: dict | None = None  # the lowest FID so far and its step (best.pt)

    def restore(self, history: list[dict]) -> None:
        """Continue a resumed run's ``history`` (and its lowest FID)."""
        self.history = history
        scored = [h for h in history if "fid" in h]
        if scored:
            best = min(scored, key=lambda h: h["fid"])
            self.best = {"fid": best["fid"], "step": best["step"]}

    def open(self) -> None:
        """metrics.jsonl as of the run's step (a resumed run keeps the lines up to its checkpoint and drops any
        written after it), and TensorBoard's writer, which drops those events likewise."""
        lines = [json.dumps(h) for h in self.history]
        (self.out / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
        if self.trainer.settings.tensorboard:
            self.writer = tensorboard_writer_class()(str(self.out / "tensorboard"), purge_step=self.trainer.step + 1)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def evaluate(self) -> dict:
        """Mode metrics on ``eval_samples`` generated points (2-D mixtures), FID and KID on ``fid`` generated
        images (image data with ``fid``)."""
        trainer = self.trainer
        modes = getattr(trainer.data, "modes", None)
        if modes is not None:
            return mode_metrics(trainer.generate(trainer.settings.eval_samples), modes)
        if self.image_metrics is not None:
            return self.image_metrics(trainer.generate(trainer.settings.fid))
        return {}

    def record(self, stats: dict, g_loss: torch.Tensor, steps_per_second: float, wall_seconds: float) -> dict:
        """The log step's line: the steps' statistics (over every rank), speed, training seconds and the
        evaluation; written by the main process."""
        trainer = self.trainer
        stats = {**stats, "g_loss": g_loss}
        if trainer.augment is not None:
            stats["augment_p"] = trainer.augment.probability  # ADA's p (fixed at 1 without --ada-target)
        if trainer.group is not None:
            stats = distributed.reduce_stats(stats, trainer.group)  # every rank's batch: global statistics
        record = {
            "step": trainer.step,
            "steps_per_second": steps_per_second,
            "wall_seconds": wall_seconds,
            **{k: v.item() for k, v in stats.items()},
        }
        if trainer.is_main:
            record.update(self.evaluate())
            if "fid" in record and (self.best is None or record["fid"] < self.best["fid"]):
                self.best = {"fid": record["fid"], "step": trainer.step}
                save_best(trainer, record["fid"])
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if self.writer is not None:
                self._tensorboard(record)
        self.history.append(record)
        return record

    def _tensorboard(self, record: dict) -> None:
        """The record's numbers as scalars and, for image data, a grid of the evaluation samples."""
        trainer = self.trainer
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, trainer.step)
        if trainer.settings.data not in TOY_SETS:
            images = trainer.generate(8 * (trainer.classes or 8))
            self.writer.add_images("samples", (images.float().clamp(-1, 1) + 1) / 2, trainer.step)

    def finish(self, wall_seconds: float) -> dict:
        """The run's summary; the main process also writes samples.pt, samples.png, curves.png and
        summary.json."""
        trainer, s = self.trainer, self.trainer.settings
        final = self.history[-1] if self.history else {}
        device = trainer.device
        summary = {
            "final": final,
            "best": self.best,
            "settings": s.options(),
            "steps": trainer.step,
            "wall_seconds": wall_seconds,
            "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "world_size": trainer.shard.world_size,
            "backend": dist.get_backend(trainer.group) if trainer.group is not None else None,
            "versions": {
                "fastgan": fastgan.__version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
        }
        if not trainer.is_main:
            return summary
        samples = trainer.generate(s.eval_samples if s.data in TOY_SETS else 8 * (trainer.classes or 8))
        torch.save(samples.cpu(), self.out / "samples.pt")
        if s.data in TOY_SETS:
            real = trainer.data.sample(s.eval_samples, torch.Generator().manual_seed(EVAL_SEED))
            title = f"{s.recipe} on {s.data}, step {trainer.step}"
            if "modes" in final:
                title += (
                    f": {final['modes']}/{final['total_modes']} modes, {100 * final['high_quality']:.1f}% high quality"
                )
            plot_samples_2d(samples.cpu(), real, trainer.data.modes, self.out / "samples.png", title)
        else:
            save_image_grid(samples, self.out / "samples.png", trainer.data.class_names if trainer.classes else None)
        if trainer.augment is not None:
            # Real images as the critic saw them at the end: the policy at the final p.
            seen = fastgan.augment(
                trainer.data.first(64),
                trainer.augment.policy,
                generator=torch.Generator(device).manual_seed(EVAL_SEED),
                probability=trainer.augment.probability.to(device),
            )
            save_image_grid(seen, self.out / "augmented.png")
        plot_curves(self.history, self.out / "curves.png")
        if self.writer is not None:
            for name in ("samples", "curves"):
                self.writer.add_image(
                    f"{name}.png", png_array(self.out / f"{name}.png"), trainer.step, dataformats="HWC"
                )
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        return summary

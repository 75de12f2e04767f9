"""The ``fastgan`` command: ``fastgan train [options]`` trains a GAN with fastgan's fused stabilizers."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from .steps.modes import MODES
from .steps.precision import PRECISIONS
from .train.config import (
    DEFAULTS,
    LIMITS,
    MEMORY_FORMATS,
    MODELS,
    NOISES,
    PROTOCOLS,
    RESUME_SAFE,
    TrainConfig,
    preset_table,
)
from .train.data import IMAGE_SETS, TOY_SETS
from .train.settings import RECIPE_NAMES
from .train.study import STUDY_SETS


class _Parser(argparse.ArgumentParser):
    """Bad arguments give one clear line and exit status 2 (no usage dump)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _floats(count: int):
    def parse(text: str) -> tuple[float, ...]:
        values = tuple(float(v) for v in text.split(","))
        if len(values) != count:
            raise argparse.ArgumentTypeError(f"expected {count} comma-separated numbers, got {text!r}")
        return values

    return parse


def _path(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastgan", description="Fused Triton kernels for stable GAN training.")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    train = commands.add_parser(
        "train",
        help="train a GAN (default: WGAN-GP on the 8-Gaussian ring)",
        description="Train a GAN with fastgan's fused penalties, clipping and losses. Options left out take the "
        "preset of the chosen loss (the reference's values), adjusted for the 2-D data sets as listed below; "
        "summary.json records every value used.",
        epilog=preset_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = train.add_argument
    add("--loss", choices=RECIPE_NAMES, help=f"recipe: {', '.join(RECIPE_NAMES)} (default wgan-gp; the presets below)")
    add(
        "--data",
        choices=TOY_SETS + IMAGE_SETS,
        help="ring (8 Gaussians), grid (25), swissroll, mnist, fashion-mnist (local files), folder (ImageFolder); "
        "default ring",
    )
    add(
        "--data-root",
        help="directory of the mnist files (DIR/MNIST/raw), of the fashion-mnist files (the four "
        ".gz files, or DIR/FashionMNIST/raw; default /usr/share/datasets/fashion-mnist, Debian's "
        "dataset-fashion-mnist) or of the image folder",
    )
    add(
        "--download",
        action="store_true",
        default=None,
        help="fetch MNIST or Fashion-MNIST into --data-root through torchvision when it is not there (needs "
        "network access)",
    )
    add(
        "--protocol",
        choices=tuple(PROTOCOLS),
        help="a published protocol as a whole (data, models, noise, batch, length, FID); options given still "
        "win. lucic2018: Lucic et al. 2018 on Fashion-MNIST (docs/study.md)",
    )
    add("--steps", type=int, help="generator steps, each after n-critic critic steps")
    add("--seed", type=int, help="random seed (default 0)")
    add("--batch-size", type=int, help="samples per batch")
    add("--device", choices=("auto", "cpu", "cuda"), help="default auto: cuda when available")
    add(
        "--out",
        type=_path,
        help="output folder, which must hold no other run (default: a new runs/NNNNN-LOSS-DATA-sSEED)",
    )
    add(
        "--threads",
        type=int,
        help="CPU threads for torch's operators (default: 1 for the 2-D data sets, whose small matrices gain "
        "nothing from more threads and lose much on a loaded machine; torch's default, the number of cores, for "
        "images)",
    )
    add(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in --out (default: the newest runs/NNNNN-LOSS-DATA-sSEED); options "
        "given must match the checkpoint's, except "
        + ", ".join("--" + k.replace("_", "-") for k in RESUME_SAFE)
        + ", which may change (--steps not below the checkpoint's step, nor at all with --lr-decay)",
    )
    add("--overwrite", action="store_true", help="replace the run in --out (its files are removed)")
    add("--quiet", action="store_true", help="no progress bar")
    add(
        "--model",
        choices=MODELS,
        help="mlp (the reference's pair; wider MLPs on 2-D data), dcgan, resnet (SNGAN's, --hidden channels) or "
        "infogan (Lucic et al.'s pair, Tanh output on [-1, 1] data)",
    )
    add(
        "--conditional",
        action="store_true",
        default=None,
        help="class-conditional GAN on the image set's labels (a projection critic, a class embedding in the "
        "generator; MNIST's digits, one class per subfolder of --data folder)",
    )
    add(
        "--spectral-norm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="spectral normalization of every critic layer (on in the sngan preset)",
    )
    add(
        "--label-smoothing",
        type=float,
        help="one-sided label smoothing of the ns loss (ns, r1): the real target is 1 - S (0.1 is usual)",
    )
    add("--lr", type=float, help="learning rate of both networks")
    add("--betas", type=_floats(2), help="Adam betas as B1,B2")
    add("--optimizer", choices=("adam", "rmsprop"), help="optimizer of both networks")
    add("--n-critic", type=int, help="critic steps per generator step")
    add("--penalty-weight", type=float, help="lambda (wgan-gp, wgan-lp, dragan, r1-approx) or gamma/2 (r1, rpgan)")
    add("--clip-value", type=float, help="weight clipping bound c (wgan)")
    add("--lsgan-abc", type=_floats(3), help="LSGAN targets A,B,C")
    add("--latent-dim", type=int, help="noise dimension")
    add("--noise", choices=NOISES, help="the generator's input: normal (default) or uniform on [-1, 1]")
    add("--hidden", type=int, help="MLP width")
    add("--depth", type=int, help="MLP hidden layers")
    add(
        "--image-size",
        type=int,
        help="image side for the image data sets (default 28), by --model: mlp 4 to "
        "1024; dcgan and resnet 4 or 7 times a power of two, 8 to 1024 (8, 14, 16, 28, 32, 56, 64, ...); infogan a "
        "multiple of 4, 4 to 1024",
    )
    add("--ema", type=float, help="decay of the generator's moving average, 0 to disable")
    add(
        "--lr-decay",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decay the learning rates linearly to 0 over the run",
    )
    add("--log-every", type=int, help="steps between log lines (default 100)")
    add("--checkpoint-every", type=int, help="steps between checkpoints (default 1000)")
    add("--eval-samples", type=int, help="generated samples for the mode metrics (default 2500)")
    add(
        "--mode",
        choices=MODES,
        help="how each step runs: auto (default: compile on a CPU, eager there for conv critics; graph on one GPU), "
        "eager, compile (torch.compile of the whole step), graph (one CUDA graph per step, CUDA only) or "
        "compile+graph (the compiled step captured, CUDA only); see fastgan.steps",
    )
    add(
        "--precision",
        choices=PRECISIONS,
        help="fp32 (default), or bf16: both networks' forward and backward under bf16 autocast, with fp32 "
        "parameters, optimizer state, penalty and losses",
    )
    add(
        "--memory-format",
        choices=MEMORY_FORMATS,
        help="layout of image batches and conv weights: auto (default: channels_last for conv critics under bf16 "
        "on CUDA, contiguous elsewhere), channels_last or contiguous",
    )
    add(
        "--fid",
        type=int,
        metavar="N",
        help="image data: FID and KID on N generated and N real images at every log step (torchmetrics; "
        "pip install 'fastgan[metrics]')",
    )
    add(
        "--fid-weights",
        metavar="PATH",
        help="the Inception-v3 weights for --fid (torch-fidelity's pt_inception-2015-12-05-6726825d.pth); "
        "default: downloaded once into torch's hub cache",
    )
    add(
        "--tensorboard",
        action="store_true",
        default=None,
        help="also write the scalars and sample grids to OUT/tensorboard (pip install 'fastgan[tensorboard]')",
    )
    add(
        "--augment",
        metavar="POLICY",
        help="differentiable augmentation of every image the critic sees (DiffAugment): some of color, "
        "translation, cutout, comma-separated, e.g. color,translation,cutout; augmented.png shows real images so",
    )
    add(
        "--ada-target",
        type=float,
        metavar="T",
        help="with --augment: ADA's adaptive probability, from 0, steered to a mean sign T of the critic's scores "
        "of augmented reals (0.6 in ADA)",
    )
    add("--lecam", type=float, metavar="W", help="LeCam regularization of the critic with weight W (0.3 in its paper)")
    add(
        "--bcr",
        type=float,
        metavar="W",
        help="balanced consistency regularization (bCR) of the critic under translation, weight W for real and "
        "fake (10 in its paper; images)",
    )
    add(
        "--zcr",
        type=_floats(2),
        metavar="D,G",
        help="latent consistency regularization (zCR): the critic's weight D and the generator's G (5,0.5 in its "
        "paper), latents moved by N(0, 0.03^2)",
    )
    add("--lazy-every", type=int, help="apply the penalty every K-th critic step with weight x K (lazy R1)")
    add("--pack", type=int, help="the critic scores groups of this many samples concatenated (PacGAN; default 1)")
    add(
        "--dist-timeout",
        type=float,
        metavar="SECONDS",
        help="with several processes (torchrun): how long to wait for another rank before failing (default 60)",
    )

    study = commands.add_parser(
        "study",
        help="every preset over several seeds on the ring and the grid (beside PacGAN's table) or on "
        "Fashion-MNIST (beside Lucic et al.'s)",
        description="Run fastgan train for each preset x data set x seed (in parallel processes; a finished run "
        "is not run again), then write study.md / study.json (mean and spread over the seeds, the published "
        "rows beside them) and the figures: samples.png and curves.png (2-D sets), image-samples.png and "
        "fid-curves.png (fashion-mnist, on --protocol lucic2018: best FID of each run).",
    )
    option = study.add_argument
    option("--presets", nargs="+", choices=RECIPE_NAMES, default=list(RECIPE_NAMES), help="default: every preset")
    option(
        "--data",
        nargs="+",
        choices=STUDY_SETS,
        default=["ring", "grid"],
        help="ring, grid, fashion-mnist; default: ring grid",
    )
    option("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="default: 0 1 2 3 4")
    option("--jobs", type=int, help="runs at once (default: one per CPU core)")
    option("--steps", type=int, help="generator steps of every run (default: each preset's)")
    option("--mode", choices=[m for m in MODES if m != "graph"], help="step mode of every run (default auto)")
    option("--precision", choices=PRECISIONS, help="precision of every run (default fp32)")
    option("--out", type=_path, default="runs/study", help="the study's directory (default runs/study)")
    option("--fid", type=int, metavar="N", help="fashion-mnist: generated and test images per FID (default 10000)")
    option("--fid-weights", metavar="PATH", help="fashion-mnist: the FID network's file (fastgan train --fid-weights)")
    option("--log-every", type=int, help="fashion-mnist: generator steps between FIDs (default: the protocol's)")
    option(
        "--device",
        choices=("auto", "cpu", "cuda"),
        help="fashion-mnist: where the runs train (default auto); 2-D runs train on the CPU",
    )
    option("--quiet", action="store_true", help="no progress bar")
    sample = commands.add_parser(
        "sample",
        help="write N images of a run's generator as uint8 (.npz or PNGs) for any metric tool",
        description="Write N images of a run's generator (its EMA where it has one) at its lowest-FID checkpoint "
        "(best.pt; --last: the last checkpoint), from the evaluation noise the run's FID was computed on: an .npz "
        "holding uint8 (N, C, H, W) under the key 'images', or a new folder of PNGs.",
    )
    option = sample.add_argument
    option("run", metavar="RUN_DIR", help="the run's folder (fastgan train --out)")
    option("--n", type=int, required=True, help="number of images")
    option("--out", type=_path, required=True, help="FILE.npz, or a new folder for PNGs; never replaced")
    option("--last", action="store_true", help="the last checkpoint instead of the lowest-FID one")
    option(
        "--labels",
        type=int,
        nargs="+",
        metavar="Y",
        help="conditional runs: classes of the images, in turn (default: N / classes of each class in turn)",
    )
    option("--seed", type=int, help="draw the noise from this seed instead of the run's evaluation noise")
    option("--device", choices=("cpu", "cuda"), default="cpu", help="where the generator runs (default cpu)")
    return parser


def _sample(args, parser) -> int:
    from .train.evaluation import EVAL_SEED
    from .train.sampling import sample_run

    try:
        if args.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ValueError("--device cuda but no CUDA device is available")
        done = sample_run(
            args.run,
            args.n,
            args.out,
            last=args.last,
            labels=args.labels,
            seed=EVAL_SEED if args.seed is None else args.seed,
            device=args.device,
        )
    except (ValueError, FileNotFoundError) as exc:
        parser.exit(2, f"fastgan sample: error: {str(exc).splitlines()[0]}\n")
    where = f"step {done['step']}" + (f", FID {done['fid']:.2f}" if done["fid"] is not None else "")
    print(f"wrote {done['n']} images of the {'EMA ' if done['ema'] else ''}generator at {where} to {args.out}")
    return 0


def _study(args, parser) -> int:
    from .train.study import run_study

    extra = [
        *(["--steps", str(args.steps)] if args.steps is not None else []),
        *(["--mode", args.mode] if args.mode else []),
        *(["--precision", args.precision] if args.precision else []),
    ]
    image_extra = [
        item
        for name in ("fid", "fid_weights", "log_every", "device")
        if getattr(args, name) is not None
        for item in ("--" + name.replace("_", "-"), str(getattr(args, name)))
    ]
    bad = next(
        (
            f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}"
            for name in ("jobs", "steps", "log_every")
            if getattr(args, name) is not None and getattr(args, name) < 1
        ),
        None,
    )
    bad = bad or next(
        (f"--seeds must be in [0, 2^32), got {seed}" for seed in args.seeds if not 0 <= seed < 2**32), None
    )
    if args.fid is not None and not 2 <= args.fid <= LIMITS["fid"]:
        bad = bad or f"--fid must be 2 to {LIMITS['fid']} images, got {args.fid}"
    if bad:
        parser.exit(2, f"fastgan study: error: {bad}\n")
    if image_extra and "fashion-mnist" not in args.data:
        parser.exit(2, f"fastgan study: error: {image_extra[0]} applies to --data fashion-mnist\n")
    try:
        run_study(args.out, args.presets, args.data, args.seeds, args.jobs, extra, args.quiet, image_extra)
    except RuntimeError as exc:
        print(f"fastgan study: error: {exc}", file=sys.stderr)
        return 1
    print((Path(args.out) / "study.md").read_text(), end="")
    figures = [
        *(["samples.png", "curves.png"] if set(args.data) & {"ring", "grid"} else []),
        *(["image-samples.png", "fid-curves.png"] if "fashion-mnist" in args.data else []),
    ]
    print(f"wrote {args.out}/study.md, study.json, {', '.join(figures)}")
    return 0


def _out(args, options: dict) -> Path:
    """The run's folder: ``--out``, else a new numbered folder (with ``--resume``: the newest) under runs/."""
    from .train import rundir

    if args.out is not None:
        return Path(args.out)
    name = "-".join(str(options[k] if options[k] is not None else DEFAULTS[k]) for k in ("loss", "data"))
    name += f"-s{options['seed'] if options['seed'] is not None else DEFAULTS['seed']}"
    root = Path("runs")
    return rundir.latest_run_dir(root, name) if args.resume else rundir.new_run_dir(root, name)


def _train(args, parser) -> int:
    options = {
        k: v for k, v in vars(args).items() if k not in ("command", "out", "resume", "quiet", "overwrite", "threads")
    }
    if args.threads is not None and args.threads < 1:
        parser.exit(2, f"fastgan train: error: --threads must be >= 1, got {args.threads}\n")
    data = args.data or PROTOCOLS.get(args.protocol, {}).get("data") or DEFAULTS["data"]
    if args.threads is not None or data in TOY_SETS:
        import torch

        torch.set_num_threads(args.threads or 1)
    from .distributed import CollectiveError
    from .train.data import DataError
    from .train.rundir import RunDirError
    from .train.signals import Interrupted
    from .train.trainer import Trainer

    def refuse(exc: Exception):
        parser.exit(2, f"fastgan train: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}\n")

    out = None
    try:
        out = _out(args, options)
        trainer = Trainer(TrainConfig(**options), out, resume=args.resume, quiet=args.quiet, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, MemoryError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "allocate" not in str(exc):
            raise
        if out is not None and args.out is None and not args.resume and not any(out.iterdir()):
            out.rmdir()  # the numbered folder made for this run, which is refused
        if not isinstance(exc, (ValueError, FileNotFoundError)):  # the models or data do not fit in memory
            exc = ValueError(
                f"the models and data of these sizes (--hidden, --depth, --latent-dim, --batch-size, "
                f"--image-size) do not fit in memory: {str(exc).splitlines()[-1][:200]}"
            )
        refuse(exc)
    try:
        summary = trainer.fit()
    except Interrupted as exc:
        if trainer.is_main:
            print(f"fastgan train: {exc}", file=sys.stderr)
        return exc.exit_status
    except (DataError, RunDirError) as exc:
        refuse(exc)
    except CollectiveError as exc:
        print(f"fastgan train: error: {exc}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # Leave at once: the process group's teardown at exit, with a rank gone, can hang or abort the process.
        os._exit(1)
    if not trainer.is_main:
        return 0  # rank 0 reports
    final = summary["final"]
    line = f"done: {summary['steps']} steps in {summary['wall_seconds']:.0f} s on {summary['device']}; wrote {out}/"
    if "modes" in final:
        kl = "n/a" if final["reverse_kl"] is None else f"{final['reverse_kl']:.3f}"
        line += (
            f"\nmodes {final['modes']}/{final['total_modes']}, high quality {100 * final['high_quality']:.1f}%, "
            f"reverse KL {kl}"
        )
    if "fid" in final:
        spread = "" if math.isnan(final["kid_std"]) else f" ± {final['kid_std']:.4f}"
        line += f"\nFID {final['fid']:.2f}, KID {final['kid']:.4f}{spread} ({trainer.settings.fid} images)"
        best = summary["best"]
        line += f"; lowest FID {best['fid']:.2f} at step {best['step']} (best.pt)"
    print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command's parser, as its own errors are
        parser.exit(
            2,
            f"fastgan{' ' + args.command if args.command else ''}: error: unrecognized arguments: "
            f"{' '.join(unknown)}\n",
        )
    if args.command == "study":
        return _study(args, parser)
    if args.command == "sample":
        return _sample(args, parser)
    if args.command != "train":
        parser.print_help()
        return 0 if args.command is None else 2
    return _train(args, parser)


if __name__ == "__main__":
    sys.exit(main())

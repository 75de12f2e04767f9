"""Mutation check: does the test suite catch a wrong kernel? ``python tools/mutation_check.py``

Applies deliberate faults one at a time to a scratch copy of the repository (the code, tests, benchmarks, docs
and packaging files), runs the test suite there with ``-x`` (stopping at the first failure) and reports,
for each fault, the first test that caught it. Exits non-zero if any fault goes uncaught. The checkout itself is
never modified. Takes minutes: a caught fault stops early, an uncaught one runs the whole suite.

    python tools/mutation_check.py                 # every fault
    python tools/mutation_check.py --list          # their names
    python tools/mutation_check.py --only NAME...  # some of them
    python tools/mutation_check.py --only NAME... --tests tests/train  # against one layer's tests
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What the suite reads: the code, the tests, and the pages and files the docs and packaging tests check.
COPIED = (
    "fastgan",
    "kernels",
    "tests",
    "tools",
    "benchmarks",
    "docs",
    "pyproject.toml",
    "README.md",
    "CONTRIBUTING.md",
    "CHANGELOG.md",
    "LICENSE",
)


@dataclass(frozen=True)
class Fault:
    name: str
    path: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str


FAULTS = [
    Fault(
        "penalty backward x0.99 when a program loops over several column blocks",
        "kernels/norm_penalty.py",
        "        dg = coef[:, None] * g\n",
        "        dg = coef[:, None] * g\n        if ITERS > 1:\n            dg = dg * 0.99\n",
    ),
    Fault(
        "penalty norm off by 0.1%",
        "kernels/norm_penalty.py",
        "        norm = tl.sqrt_rn(sumsq)",
        "        norm = tl.sqrt_rn(sumsq) * 1.001",
    ),
    Fault(
        "penalty finishing pass skips the last chunk",
        "kernels/norm_penalty.py",
        "mask = row_mask[:, None] & (cols < n_chunks)[None, :]",
        "mask = row_mask[:, None] & (cols < n_chunks - 1)[None, :]",
    ),
    Fault(
        "penalty one-sided branch ignored",
        "kernels/norm_penalty.py",
        "        dev = tl.where(dev < 0.0, 0.0, dev)",
        "        dev = dev",
    ),
    Fault(
        "interpolation reads fake with real's row stride",
        "kernels/interpolation.py",
        "fake = tl.load(fake_ptr + rows[:, None] * fake_stride + cols[None, :], mask=mask).to(ACC)",
        "fake = tl.load(fake_ptr + rows[:, None] * real_stride + cols[None, :], mask=mask).to(ACC)",
    ),
    Fault(
        "interpolation real and fake swapped",
        "kernels/interpolation.py",
        "        out = fake + alpha * (real - fake)",
        "        out = real + alpha * (fake - real)",
    ),
    Fault(
        "interpolation alpha gradient with real and fake swapped",
        "kernels/interpolation.py",
        "acc += go * (real.to(ACC) - fake.to(ACC))",
        "acc += go * (fake.to(ACC) - real.to(ACC))",
    ),
    Fault(
        "interpolation launcher skips its preconditions unless told to check",
        "kernels/interpolation.py",
        "    real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor, out: torch.Tensor, *, check: bool = True\n",
        "    real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor, out: torch.Tensor, *, check: bool = False\n",
    ),
    Fault(
        "direct launches keyed without the pointers' alignment",
        "kernels/launch.py",
        "specialize and align and value.data_ptr() % 16 == 0",
        "specialize and align",
    ),
    Fault(
        "direct launches keyed without the integers' width",
        "kernels/launch.py",
        "width = 0 if -_I32 <= value < _I32 else",
        "width = 0 if -_I64 <= value < _I64 else",
    ),
    Fault(
        "row mask dropped in the shared prologue",
        "kernels/_tiles.py",
        "    return rb, chunk, rows, rows < B, col0",
        "    return rb, chunk, rows, rows >= 0, col0",
    ),
    Fault(
        "tiling drops the partial last chunk",
        "kernels/_tiles.py",
        "    n_chunks = cdiv(col_blocks, iters)",
        "    n_chunks = col_blocks // iters",
    ),
    Fault(
        "row tiles remembered without the target they were chosen for",
        "kernels/_tiles.py",
        "    return _row_tiles(batch, width, TARGET_PROGRAMS)",
        "    return _row_tiles(batch, width, 1024)",
    ),
    Fault(
        "two tensors' sample orders compared by their contiguous form only",
        "kernels/_strides.py",
        "    return x.stride()[1:] == ref.stride()[1:] or sample_strides(x) == sample_strides(ref)",
        "    return x.stride()[1:] == ref.stride()[1:] or x.is_contiguous() == ref.is_contiguous()",
    ),
    Fault(
        "clipping bound not rounded to the dtype",
        "kernels/clipping.py",
        "    bound = float(torch.tensor(clip_value, dtype=dtype))",
        "    bound = float(clip_value)",
    ),
    Fault(
        "clipping writes one element past each chunk",
        "kernels/clipping.py",
        "        mask = offs < n\n",
        "        mask = offs <= n\n",
    ),
    Fault(
        "clipping skips autograd's version bump",
        "fastgan/clipping.py",
        "        torch.autograd.graph.increment_version(fused)",
        "        pass",
    ),
    Fault(
        "loss finishing pass drops the last partial",
        "kernels/losses.py",
        "        acc += tl.load(partial_ptr + offs, mask=offs < n, other=0.0)",
        "        acc += tl.load(partial_ptr + offs, mask=offs < n - 1, other=0.0)",
    ),
    Fault(
        "loss gradient of b scaled by a's weight",
        "kernels/losses.py",
        "                gout * w_b / n_b,\n",
        "                gout * w_a / n_b,\n",
    ),
    Fault(
        "WGAN loss sign flipped",
        "fastgan/losses.py",
        "_MINUS_MEAN = Term(LINEAR, weight=-1.0)",
        "_MINUS_MEAN = Term(LINEAR, weight=1.0)",
    ),
    Fault(
        "eager penalty without the zero-norm guard",
        "fastgan/norm_penalty.py",
        " / norms).masked_fill(norms == 0, 0.0)",
        " / norms)",
    ),
    Fault(
        "eager interpolation with real and fake swapped",
        "fastgan/interpolation.py",
        "        return torch.lerp(fake, real, _per_sample(alpha, real, acc))",
        "        return torch.lerp(real, fake, _per_sample(alpha, real, acc))",
    ),
    Fault(
        "the steps' penalty points with real and fake swapped",
        "fastgan/interpolation.py",
        "    return _forward(real, fake, alpha, uses_triton(real.device) if fused is None else fused)[3]",
        "    return _forward(fake, real, alpha, uses_triton(real.device) if fused is None else fused)[3]",
    ),
    Fault(
        "eager hinge loss ignores its one-sided branch",
        "fastgan/losses.py",
        "    return (x + 1.0 if p == 1.0 else x * p + 1.0).relu(), 1.0",
        "    return (x + 1.0 if p == 1.0 else x * p + 1.0), 1.0",
    ),
    Fault(
        "eager LSGAN on equal batches loses the factor 2 of its joint mean",
        "fastgan/losses.py",
        "targets), 2 * term_a.weight)",
        "targets), term_a.weight)",
    ),
    Fault(
        "eager one-term cross-entropy with the label flipped",
        "fastgan/losses.py",
        "binary_cross_entropy_with_logits(x, torch.full_like(x, term.param))",
        "binary_cross_entropy_with_logits(x, torch.full_like(x, 1.0 - term.param))",
    ),
    Fault(
        "eager two-term loss subtracts the wrong way round",
        "fastgan/losses.py",
        "        return y - x, c_y",
        "        return x - y, c_y",
    ),
    Fault(
        "lazy penalty update without the x k weight",
        "fastgan/steps/critic.py",
        "runner(None, kind, self.lazy.weight * self.lazy.every)",
        "runner(None, kind, self.lazy.weight)",
    ),
    Fault(
        "compiled step drops the penalty weight",
        "fastgan/steps/objectives.py",
        "            total = self.weight * penalty if total is None else total + self.weight * penalty\n",
        "            total = penalty if total is None else total + penalty\n",
    ),
    Fault(
        "generator EMA moves by the decay instead of 1 - decay",
        "fastgan/steps/generator.py",
        "objective.ema_weight.fill_(1.0 - min(",
        "objective.ema_weight.fill_(0.0 + min(",
    ),
    Fault(
        "compile check tolerates anything below the whole gradient's norm",
        "fastgan/steps/compiled/check.py",
        "ZERO_GRADIENT = 1e-6",
        "ZERO_GRADIENT = 1.0",
    ),
    Fault(
        "gradient all-reduce sums over the ranks without dividing",
        "fastgan/distributed.py",
        "        flat.div_(world)\n",
        "        pass\n",
    ),
    Fault(
        "alpha drawn for this rank's rows only, not the global batch",
        "fastgan/steps/objectives.py",
        "alpha = shard.rows(torch.rand(rows, device=real.device)) if kind.draws_alpha else None",
        "alpha = torch.rand(real.shape[0], device=real.device) if kind.draws_alpha else None",
    ),
    Fault(
        "training noise drawn for this rank only",
        "fastgan/train/trainer.py",
        "return self.shard.rows(latent_noise(self.settings, n * self.shard.world_size, device=self.device))",
        "return latent_noise(self.settings, n, device=self.device)",
    ),
    Fault(
        "R1 penalty taken at shifted samples",
        "fastgan/penalties.py",
        'return _squared_norm_at(critic, "real", real, return_norms, scaler)',
        'return _squared_norm_at(critic, "real", real + 0.01, return_norms, scaler)',
    ),
    Fault(
        "packed critic groups every (B / M)-th sample instead of consecutive ones",
        "fastgan/train/models.py",
        "        return self.inner(x.reshape(x.shape[0] // self.pack, self.pack * x.shape[1], *x.shape[2:]))",
        "        x = x.reshape(self.pack, x.shape[0] // self.pack, *x.shape[1:]).transpose(0, 1)\n"
        "        return self.inner(x.reshape(x.shape[0], self.pack * x.shape[2], *x.shape[3:]))",
    ),
    Fault(
        "zero-branch pass drops the NaN of products it folds",
        "fastgan/steps/compiled/zero_branches.py",
        "p = self.zeros[x] if self._zero(x) else self._flag(node, x)",
        "p = self.zeros[x] if self._zero(x) else None",
    ),
    Fault(
        "zero-branch pass folds a where with one zero branch",
        "fastgan/steps/compiled/zero_branches.py",
        "self._zero_value(args[1]) and self._zero_value(args[2])",
        "self._zero_value(args[1]) or self._zero_value(args[2])",
    ),
    Fault(
        "in-graph Adam without weight decay",
        "fastgan/steps/compiled/optimizer_update.py",
        '        lr=group["lr"],\n        weight_decay=group["weight_decay"],\n        eps=group["eps"],',
        '        lr=group["lr"],\n        weight_decay=0.0,\n        eps=group["eps"],',
    ),
    Fault(
        "in-graph update with the first group's hyperparameters for every group",
        "fastgan/steps/compiled/optimizer_update.py",
        "                optimizer.param_groups[k],\n",
        "                optimizer.param_groups[0],\n",
    ),
    Fault(
        "float64 judge of the compile check accepts anything",
        "fastgan/steps/compiled/check.py",
        "    return error <= max(rtol * float(r.norm()), NOISE_FACTOR * eager_error) + floor",
        "    return True",
    ),
    Fault(
        "auto mode raises instead of compiling where the optimizer cannot be captured",
        "fastgan/steps/runner.py",
        '            if mode == "graph" and self.graph_impossible():',
        "            if False:",
    ),
    Fault(
        "graph mode captures a GradScaler's syncing step",
        "fastgan/steps/objectives.py",
        '            return "a GradScaler\'s step reads on the host whether gradients overflowed"\n',
        "            pass\n",
    ),
    Fault(
        "clipping leaves grad mode off",
        "fastgan/clipping.py",
        "        torch.set_grad_enabled(grad_was_enabled)",
        "        torch.set_grad_enabled(False)",
    ),
    Fault(
        "a resumed run loads the checkpoint's optimizer form over its mode's",
        "fastgan/train/building.py",
        'optimizer.load_state_dict({**saved, "param_groups": groups})',
        "optimizer.load_state_dict(saved)",
    ),
    Fault(
        "compile check leaves the eager gradients' buffer updates (state advanced twice)",
        "fastgan/steps/compiled/step.py",
        "        mark.undo()\n        restore(before)\n        set_rng_state(device, rng)\n        lost",
        "        mark.undo()\n        set_rng_state(device, rng)\n        lost",
    ),
    Fault(
        "compile check runs the compiled gradients on other random numbers",
        "fastgan/steps/compiled/step.py",
        "        restore(before)\n        set_rng_state(device, rng)\n        lost",
        "        restore(before)\n        lost",
    ),
    Fault(
        "a fallback after a failed check keeps the compiled attempt's buffer updates",
        "fastgan/steps/compiled/step.py",
        "        self.runner.fall_back(why)\n        restore(before)\n",
        "        self.runner.fall_back(why)\n",
    ),
    Fault(
        "compiled steps draw dropout masks from Inductor's own generator",
        "fastgan/steps/compiled/whole.py",
        '"fallback_random": True',
        '"fallback_random": False',
    ),
    Fault(
        "modules changed between calls are not looked up again",
        "fastgan/steps/runner.py",
        "        for s in self.states:\n            s.follow()\n",
        "        pass\n",
    ),
    Fault(
        "frozen parameters trained",
        "fastgan/steps/state.py",
        "trained = [(n, p) for n, p in named if p.requires_grad and self.optimizer is not None]",
        "trained = [(n, p) for n, p in named if self.optimizer is not None]",
    ),
    Fault(
        "the generator step unfreezes the critic",
        "fastgan/steps/objectives.py",
        "        return self.objective(self.state.module, self.aux.module, ops,",
        "        return self.objective(self.state.module, self.aux.module.requires_grad_(True), ops,",
    ),
    Fault(
        "clipping clamps the frozen parameters too",
        "fastgan/steps/objectives.py",
        "clip_weights_(self.state.params, self.clip_value)",
        "clip_weights_(self.state.module, self.clip_value)",
    ),
    Fault(
        "a scalar critic output accepted",
        "fastgan/_input_checks.py",
        "    if not (scores.dim() == 1 or (scores.dim() == 2 and scores.shape[1] == 1)) or scores.shape[0] != rows:",
        "    if scores.dim() == 2 and scores.shape[1] > 1:",
    ),
    Fault(
        "the penalty points given the fake samples' labels",
        "fastgan/penalties.py",
        '    return fake_labels if kind.at == "fake" else labels',
        "    return fake_labels",
    ),
    Fault(
        "R2's points given the real samples' labels",
        "fastgan/penalties.py",
        '    return fake_labels if kind.at == "fake" else labels',
        "    return labels",
    ),
    Fault(
        "the catalogue's LP penalty two-sided",
        "fastgan/penalties.py",
        '"lp": PenaltyKind(1.0, True, "interpolates")',
        '"lp": PenaltyKind(1.0, False, "interpolates")',
    ),
    Fault(
        "label smoothing lowers the fake target instead of the real one",
        "fastgan/losses.py",
        "Term(LOGISTIC, 1.0 - label_smoothing)",
        "Term(LOGISTIC, label_smoothing)",
    ),
    Fault(
        "cross-entropy kernel gradient ignores the target of the sigmoid(x) part",
        "kernels/losses.py",
        "        d = (1.0 - p) * sig - p * sig_neg\n",
        "        d = sig - p * sig_neg\n",
    ),
    Fault(
        "mode metrics count samples within 4 standard deviations",
        "fastgan/train/metrics.py",
        "good = nearest_distance < 3 * modes.std",
        "good = nearest_distance < 4 * modes.std",
    ),
    Fault(
        "mode metrics count every sample, not the high-quality ones",
        "fastgan/train/metrics.py",
        "counts = torch.bincount(nearest[good], minlength=len(modes.centers))",
        "counts = torch.bincount(nearest, minlength=len(modes.centers))",
    ),
    Fault(
        "the ring's modes twice as wide",
        "fastgan/train/data.py",
        "def ring_modes(count: int = 8, radius: float = 1.0, std: float = 0.01)",
        "def ring_modes(count: int = 8, radius: float = 1.0, std: float = 0.02)",
    ),
    Fault(
        "a new run writes into another run's folder",
        "fastgan/train/rundir.py",
        "    if found and not resume and not overwrite:",
        "    if False:",
    ),
    Fault(
        "an interrupted run writes no checkpoint",
        "fastgan/train/trainer.py",
        "if self.is_main and (stopping or self.step % s.checkpoint_every == 0",
        "if self.is_main and (self.step % s.checkpoint_every == 0",
    ),
    Fault(
        "resume lets --steps change under a learning-rate decay",
        "fastgan/train/checkpoint.py",
        '    if steps != saved["steps"] and saved.get("lr_decay"):',
        "    if False:",
    ),
    Fault(
        "the conditional critic step gets the fake labels for the real batch",
        "fastgan/train/trainer.py",
        "stats = self.critic_update(real, fake, labels=labels, fake_labels=fake_labels, **extra)",
        "stats = self.critic_update(real, fake, labels=fake_labels, fake_labels=fake_labels, **extra)",
    ),
    Fault(
        "a card's RESULTS.md part replaces the first card's part",
        "benchmarks/report.py",
        "    begin, end = markers(card)\n",
        "    begin, end = markers(card)\n    begin, end = markers('nvidia-h100-80gb-hbm3')\n",
    ),
    Fault(
        "compile+graph captures the eager step instead of the compiled one",
        "fastgan/steps/compiled/captured.py",
        "        stats = self.compiled.update(inputs)\n        self.runner.objective.after_update()",
        "        stats = self.runner.eager.run(inputs)\n        self.runner.objective.after_update()",
    ),
    Fault(
        "--memory-format channels_last leaves the real batches contiguous",
        "fastgan/train/trainer.py",
        "            real = real.contiguous(memory_format=torch.channels_last)",
        "            real = real",
    ),
    Fault(
        "KID's random subsets drawn from the training generator",
        "fastgan/train/image_metrics.py",
        "    draws = torch.Generator().manual_seed(KID_SEED)",
        "    draws = None",
    ),
    Fault(
        "KID keeps the kernels' diagonals",
        "fastgan/train/image_metrics.py",
        "(k_xx.sum() - k_xx.trace()) / off",
        "k_xx.sum() / off",
    ),
    Fault(
        "the Fréchet distance's cross term taken once",
        "fastgan/train/image_metrics.py",
        "cov_a.trace() + cov_b.trace() - 2 * trace_sqrt",
        "cov_a.trace() + cov_b.trace() - trace_sqrt",
    ),
    Fault(
        "images for FID truncated to uint8 instead of rounded",
        "fastgan/train/image_metrics.py",
        "    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)",
        "    return ((images.float().clamp(-1, 1) + 1) * 127.5).to(torch.uint8)",
    ),
    Fault(
        "the TorchScript FID network fed [0, 1] pixels",
        "fastgan/train/image_metrics.py",
        "        return self.net((x - 128) / 128).flatten(1)",
        "        return self.net(x / 255).flatten(1)",
    ),
    Fault(
        "the real features' cache key leaves out N",
        "fastgan/train/evaluation.py",
        "-{split}-n{n}-{s.image_size}px-",
        "-{split}-{s.image_size}px-",
    ),
    Fault(
        "Fashion-MNIST's FID against its training images",
        "fastgan/train/evaluation.py",
        'n, split = s.fid, "test" if s.data == "fashion-mnist" else "train"',
        'n, split = s.fid, "train"',
    ),
    Fault(
        "Fashion-MNIST's FID against a random subset of the test images",
        "fastgan/train/evaluation.py",
        "        indices = torch.arange(n)\n",
        "        indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(1))[:n]\n",
    ),
    Fault(
        "auto compiles conv steps on a CPU",
        "fastgan/steps/modes.py",
        '        return "eager" if convolves else "compile"',
        '        return "compile"',
    ),
    Fault(
        "best.pt follows the highest FID",
        "fastgan/train/evaluation.py",
        'self.best is None or record["fid"] < self.best["fid"]',
        'self.best is None or record["fid"] > self.best["fid"]',
    ),
    Fault(
        "training seconds count the evaluations",
        "fastgan/train/trainer.py",
        "                    last_time, last_step = time.perf_counter(), self.step",
        "                    last_time, last_step = now, self.step",
    ),
    Fault(
        "fastgan sample draws other noise than the run's evaluation",
        "fastgan/cli.py",
        "seed=EVAL_SEED if args.seed is None else args.seed",
        "seed=0 if args.seed is None else args.seed",
    ),
    Fault(
        "uniform noise drawn from a normal",
        "fastgan/train/building.py",
        '    if s.noise == "uniform":',
        "    if False:",
    ),
    Fault(
        "the protocol's generator steps round the critic updates down",
        "fastgan/train/config.py",
        "steps=-(-updates // n_critic)",
        "steps=updates // n_critic",
    ),
    Fault(
        "an IDX file's length not checked against its header",
        "fastgan/train/idx_images.py",
        "    if len(body) != int(np.prod(shape)):",
        "    if False:",
    ),
    Fault(
        "torchvision's FashionMNIST/raw layout not searched",
        "fastgan/train/idx_images.py",
        '    for folder in (root, root / "FashionMNIST" / "raw"):',
        "    for folder in (root,):",
    ),
    Fault(
        "uint8 batches scaled by 128",
        "fastgan/train/data.py",
        "    return images.float().div_(127.5).sub_(1.0)",
        "    return images.float().div_(128.0).sub_(1.0)",
    ),
    Fault(
        "the dragan preset runs without its penalty",
        "fastgan/train/settings.py",
        '    "dragan": Recipe("ns", "dragan"),',
        '    "dragan": Recipe("ns", None),',
    ),
    Fault(
        "--fid computes nothing",
        "fastgan/train/evaluation.py",
        "            return self.image_metrics(trainer.generate(trainer.settings.fid))",
        "            return {}",
    ),
    Fault(
        "--tensorboard drops the FID scalars",
        "fastgan/train/evaluation.py",
        '            if key != "step" and isinstance(value, (int, float)):',
        '            if key not in ("step", "fid") and isinstance(value, (int, float)):',
    ),
    Fault(
        "precision='bf16' runs the networks in fp32",
        "fastgan/steps/precision.py",
        '    if precision == "bf16":\n        return torch.autocast(device_type, dtype',
        '    if precision == "bf16x":\n        return torch.autocast(device_type, dtype',
    ),
    Fault(
        "the compiled critic step takes the penalty's input gradient in fp32 under bf16",
        "fastgan/steps/objectives.py",
        "partial(_forward_at, critic, y, self.precision)",
        'partial(_forward_at, critic, y, "fp32")',
    ),
    Fault(
        "the compiled generator step runs the generator in fp32 under bf16",
        "fastgan/steps/objectives.py",
        "        with networks(self.precision, noise.device.type):\n            fake = generator(noise, *conditioning)",
        '        with networks("fp32", noise.device.type):\n            fake = generator(noise, *conditioning)',
    ),
    Fault(
        "the kernels take CPU tensors without the interpreter",
        "kernels/_preconditions.py",
        'device.type == "cpu" and environment("TRITON_INTERPRET") not in (None, "", "0")',
        'device.type == "cpu"',
    ),
    # What users' modules, optimizers and inputs do (issue 29).
    Fault(
        "compile mode's eager check leaves the forward's attribute changes in place",
        "fastgan/steps/compiled/step.py",
        "        eager_changes = mark.changes()\n        mark.undo()\n",
        "        eager_changes = mark.changes()\n",
    ),
    Fault(
        "graph mode captures a step whose forward changes the module",
        "fastgan/steps/graph.py",
        "            if what:\n                raise StateChangedInForward",
        "            if False:\n                raise StateChangedInForward",
    ),
    Fault(
        "an error of the user's module in compiled code leaves the step eager",
        "fastgan/steps/compiled/step.py",
        "        stats = self.runner.eager.run(inputs)\n"
        "        self.runner.fall_back(compile_failure(exc, self.runner.modules()))",
        "        self.runner.fall_back(compile_failure(exc, self.runner.modules()))\n"
        "        stats = self.runner.eager.run(inputs)",
    ),
    Fault(
        "a compile failure does not name the user's line",
        "fastgan/steps/compiled/whole.py",
        '    frames = [f for f in getattr(exc, "real_stack", None) or () if not is_library(f.filename)]',
        "    frames = []",
    ),
    Fault(
        "parameter groups changed between calls are not followed",
        "fastgan/steps/runner.py",
        "        if layout == self._layout:\n            return",
        "        if True:\n            return",
    ),
    Fault(
        "a parameter removed from the optimizer is not refused",
        "fastgan/steps/runner.py",
        "        self.state.refresh()\n        self._layout = layout",
        "        self._layout = layout",
    ),
    Fault(
        "a numbered run folder is taken even where another run made it",
        "fastgan/train/rundir.py",
        "            path.mkdir()\n",
        "            path.mkdir(exist_ok=True)\n",
    ),
    Fault(
        "a new run does not claim its --out",
        "fastgan/train/rundir.py",
        '        (out / "metrics.jsonl").open("x").close()',
        '        (out / "metrics.jsonl").open("a").close()',
    ),
    Fault(
        "--out '' accepted",
        "fastgan/cli.py",
        "    if not text.strip():\n        raise argparse",
        "    if False:\n        raise argparse",
    ),
    Fault(
        "KID's subsets as large as the sets",
        "fastgan/train/image_metrics.py",
        "    m = subset_size if subset_size < smaller else max(2, smaller // 2)",
        "    m = min(subset_size, smaller)",
    ),
    Fault(
        "--image-size 4 accepted for the convolutional models",
        "fastgan/train/models.py",
        "for b in (4, 7) for k in range(1, 9)",
        "for b in (4, 7) for k in range(0, 9)",
    ),
    Fault(
        "16-bit images clipped to white",
        "fastgan/train/data.py",
        '    if image.mode.startswith("I;16") or image.mode == "I":',
        "    if False:",
    ),
    Fault(
        "2-D runs keep torch's default threads",
        "fastgan/cli.py",
        "    if args.threads is not None or data in TOY_SETS:",
        "    if args.threads is not None:",
    ),
    Fault(
        "a resumed run's seconds start from zero",
        "fastgan/train/trainer.py",
        '        train_seconds = history[-1].get("wall_seconds", 0.0) if history else 0.0',
        "        train_seconds = 0.0",
    ),
    Fault(
        "size options not bounded",
        "fastgan/train/config.py",
        "        if name in LIMITS and int(s[name]) > LIMITS[name]:",
        "        if False:",
    ),
    Fault(
        "models larger than the machine's memory are built",
        "fastgan/train/building.py",
        "    if need > have:\n",
        "    if False:\n",
    ),
    Fault(
        "curves.png keeps panels without data",
        "fastgan/train/plots.py",
        "    panels = [(title, lines) for title, lines in panels if any(",
        "    panels = [(title, lines) for title, lines in panels if True or any(",
    ),
    Fault(
        "a fallback keeps the strategy that failed",
        "fastgan/steps/runner.py",
        "        self.strategy = self.eager\n",
        "        pass\n",
    ),
    Fault(
        "warnings point at fastgan's own line",
        "fastgan/_frames.py",
        "    while frame.f_back is not None and frame.f_code.co_filename.startswith(OURS):",
        "    while False:",
    ),
    Fault(
        "fp64 inputs accumulate in fp32",
        "kernels/accumulator.py",
        "    return torch.float64 if torch.float64 in dtypes else torch.float32",
        "    return torch.float32",
    ),
    # Issue 31: the relativistic losses and the approximate penalties.
    Fault(
        "paired loss backward gives b the gradient of a, not its negation",
        "kernels/losses.py",
        "        tl.store(dy_ptr + offs, (-d).to(dy_ptr.dtype.element_ty), mask=mask)",
        "        tl.store(dy_ptr + offs, d.to(dy_ptr.dtype.element_ty), mask=mask)",
    ),
    Fault(
        "relativistic average pass stores the batch means swapped",
        "kernels/losses.py",
        "    tl.store(stats_ptr, mean_b)\n    tl.store(stats_ptr + 1, mean_a)",
        "    tl.store(stats_ptr, mean_a)\n    tl.store(stats_ptr + 1, mean_b)",
    ),
    Fault(
        "relativistic average eager path shifts the fake scores by their own mean",
        "fastgan/losses.py",
        "        a, b = a - b.mean(), b - a.mean()",
        "        a, b = a - b.mean(), b - b.mean()",
    ),
    Fault(
        "R1 + R2 drops R2",
        "fastgan/penalties.py",
        '        return (replace(self, at="real"), replace(self, at="fake"))',
        '        return (replace(self, at="real"),)',
    ),
    Fault(
        "approximate penalty ignores the step's sigma",
        "fastgan/steps/objectives.py",
        "perturbed(x, noise, self.sigma)",
        "perturbed(x, noise, APPROXIMATION_SIGMA)",
    ),
    Fault(
        "approximate penalty draws uniform noise",
        "fastgan/steps/objectives.py",
        "        draw = torch.randn if kind.approximate else torch.rand",
        "        draw = torch.rand",
    ),
    Fault(
        "relativistic generator step scores the real batch before the generated one",
        "fastgan/steps/objectives.py",
        "        fake_out = scores(critic, seen, labels, self.aux.module, self.precision)\n"
        "        real_out = None\n"
        "        if real is not None:\n"
        "            seen = ops.augment(real, real_params, policy)\n"
        "            real_out = scores(critic, seen, real_labels, self.aux.module, self.precision).detach()\n",
        "        real_out = None\n"
        "        if real is not None:\n"
        "            seen = ops.augment(real, real_params, policy)\n"
        "            real_out = scores(critic, seen, real_labels, self.aux.module, self.precision).detach()\n"
        "        seen = ops.augment(fake, fake_params, policy)\n"
        "        fake_out = scores(critic, seen, labels, self.aux.module, self.precision)\n",
    ),
    # Differentiable augmentation (issue 31).
    Fault(
        "the augmentation's adjoint shifts the gradient the forward's way",
        "kernels/augment.py",
        "        si = i - t_h\n",
        "        si = i + t_h\n",
    ),
    Fault(
        "the adjoint's sample mean ignores the translation and the cutout",
        "kernels/augment.py",
        "WEIGHTED=adjoint,",
        "WEIGHTED=False,",
    ),
    Fault(
        "the kernel's cutout starts at its centre",
        "kernels/augment.py",
        "    top = tl.floor(tl.load(row + 5, mask=rows, other=0.0) * m_h).to(tl.int32) - CUT_H // 2",
        "    top = tl.floor(tl.load(row + 5, mask=rows, other=0.0) * m_h).to(tl.int32)",
    ),
    Fault(
        "the kernel's cutout zeroes NaN instead of multiplying it",
        "kernels/augment.py",
        "            out = (scale[:, :, None] * v + shade[:, None, :]) * kept[:, None, :]",
        "            out = tl.where(kept[:, None, :] > 0, scale[:, :, None] * v + shade[:, None, :], 0.0)",
    ),
    Fault(
        "the eager adjoint shifts the gradient the forward's way",
        "fastgan/augment.py",
        "        y = _shift(y * _kept(y, top, left, cut_h, cut_w), -t_h, -t_w)",
        "        y = _shift(y * _kept(y, top, left, cut_h, cut_w), t_h, t_w)",
    ),
    Fault(
        "a penalty's critic goes through the real batch's augmentation for R2 too",
        "fastgan/steps/objectives.py",
        "                params = point_labels(part, *both_params)",
        "                params = real_params",
    ),
    Fault(
        "a penalty's gradient skips the augmentation",
        "fastgan/steps/objectives.py",
        "                params = point_labels(part, *both_params)",
        "                params = None",
    ),
    Fault(
        "the critic step draws the fake batch's augmentation first",
        "fastgan/steps/objectives.py",
        "augmentation_draws(self.augment, self.shard, real, fake)",
        "augmentation_draws(self.augment, self.shard, fake, real)[::-1]",
    ),
    Fault(
        "the generator step scores the generated batch un-augmented",
        "fastgan/steps/objectives.py",
        "        seen = ops.augment(fake, fake_params, policy)\n",
        "        seen = fake\n",
    ),
    Fault(
        "ADA moves p against the sign",
        "fastgan/augment.py",
        "torch.sign(self._signs / self._seen - self.target)",
        "torch.sign(self.target - self._signs / self._seen)",
    ),
    Fault(
        "a resumed run forgets the augmentation's p and signs",
        "fastgan/train/resume.py",
        '        trainer.augment.load_state_dict(state["augment"])',
        "        pass",
    ),
    # LeCam, bCR, zCR (issue 31).
    Fault(
        "LeCam pulls real scores towards the real average",
        "fastgan/regularizers.py",
        "torch.relu(real - moved[1])",
        "torch.relu(real - moved[0])",
    ),
    Fault(
        "LeCam's averages are not kept between updates",
        "fastgan/steps/critic.py",
        'self.lecam.ema.copy_(torch.stack([stats["lecam_ema_real"], stats["lecam_ema_fake"]]))',
        "self.lecam.ema.copy_(self.lecam.ema)",
    ),
    Fault(
        "bCR weighs the fake term with the real weight",
        "fastgan/steps/objectives.py",
        "+ fake_weight * (",
        "+ real_weight * (",
    ),
    Fault(
        "zCR's generator term pulls the samples together",
        "fastgan/steps/objectives.py",
        "            loss = loss - self.zcr[0] * latent",
        "            loss = loss + self.zcr[0] * latent",
    ),
    Fault(
        "a resumed run restarts LeCam's averages",
        "fastgan/train/resume.py",
        '        trainer.lecam.load_state_dict(state["lecam"])',
        "        pass",
    ),
    Fault(
        "a planned launch keys on the pointers' dtypes but not their alignment",
        "kernels/launch.py",
        "*[None if p is None else (p.dtype, p.data_ptr() & 15) for p in pointers]",
        "*[None if p is None else p.dtype for p in pointers]",
    ),
    Fault(
        "a plan is reused across devices",
        "kernels/launch.py",
        "        device: int = pointers[0].get_device()  # type: ignore[union-attr]",
        "        device: int = 0",
    ),
    Fault(
        "the penalty's plan forgets the row stride",
        "kernels/norm_penalty.py",
        "        (g.shape, g.dtype, g.stride(0), center, one_sided, _tiles.TARGET_PROGRAMS),",
        "        (g.shape, g.dtype, g.shape[1:].numel(), center, one_sided, _tiles.TARGET_PROGRAMS),",
    ),
    Fault(
        "the interpolation remembers a fake batch it copies",
        "fastgan/interpolation.py",
        "alpha.is_contiguous() and rows_like(fake, real) is fake:",
        "alpha.is_contiguous():",
    ),
    Fault(
        "the interpolation remembers a non-contiguous alpha",
        "fastgan/interpolation.py",
        "        if fused and signature is not None and alpha.is_contiguous() and rows_like(fake, real) is fake:",
        "        if fused and signature is not None and rows_like(fake, real) is fake:",
    ),
    Fault(
        "the remembered interpolation ignores autograd",
        "fastgan/interpolation.py",
        "    if plan is not None and not _differentiated(real, fake, alpha):",
        "    if plan is not None:",
    ),
    Fault(
        "the losses' plan forgets the first output's stride",
        "kernels/losses.py",
        "        a.stride(0),\n        a.dtype,",
        "        1,\n        a.dtype,",
    ),
    Fault(
        "a bf16 step casts the weights at every network call",
        "fastgan/steps/precision.py",
        "        return torch.autocast(device_type, enabled=False)",
        "        return contextlib.nullcontext()",
    ),
    Fault(
        "the remembered interpolation forgets the pointers' alignment",
        "fastgan/interpolation.py",
        "        *(fake.shape, fake.stride(), fake.dtype, fake.device, fake.data_ptr() & 15),",
        "        *(fake.shape, fake.stride(), fake.dtype, fake.device),",
    ),
    Fault(
        "the backend's environment read goes back to os.environ.get",
        "kernels/_preconditions.py",
        '    items, key = getattr(os.environ, "_data", None), _ENCODED.get(name)\n',
        "    items, key = None, None\n",
    ),
    Fault(
        "the environment read looks up unencoded names",
        "kernels/_preconditions.py",
        "    {name: os.environ.encodekey(name) for name in",
        "    {name: name for name in",
    ),
    Fault(
        "a plan keeps its launcher after its first direct launch was refused",
        "kernels/launch.py",
        "        if kernel.direct and kernel._launched_directly and kernel._stream is not None:",
        "        if kernel._stream is not None:",
    ),
    Fault(
        "the step profile ranks kernels from the least time up",
        "benchmarks/step_profile.py",
        "ranked = sorted(times.items(), key=lambda item: -item[1])",
        "ranked = sorted(times.items(), key=lambda item: item[1])",
    ),
    Fault(
        "the step profile counts a vector norm as normalization",
        "benchmarks/step_profile.py",
        'r"reduce|sum|mean|vector_norm"',
        'r"reduce|sum|mean"',
    ),
    Fault(
        "the scalar check's fast path lets a bool through",
        "fastgan/_input_checks.py",
        "(cls is bool or not isinstance(value, Real))",
        "(not isinstance(value, Real))",
    ),
]


def _scratch_copy(fault: Fault, into: Path) -> None:
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, into / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, into / name)
    # The package as installed: kernels/ is fastgan.kernels (kernels/ stays too, for the wheel the packaging test
    # builds from the copy; the fault goes into fastgan/kernels/, which the tests import).
    shutil.copytree(into / "kernels", into / "fastgan" / "kernels")
    where = into / (
        fault.path.replace("kernels/", "fastgan/kernels/", 1) if fault.path.startswith("kernels/") else fault.path
    )
    text = where.read_text()
    if text.count(fault.old) != 1:
        raise SystemExit(
            f"fault {fault.name!r}: the text to replace occurs {text.count(fault.old)} times in "
            f"{fault.path} (expected once); update the fault"
        )
    where.write_text(text.replace(fault.old, fault.new))


def run_fault(fault: Fault, timeout: int, tests: list[str]) -> tuple[str | None, float]:
    """The first test of ``tests`` (pytest paths) that failed with ``fault`` applied (None if none did), and the
    seconds it took."""
    with tempfile.TemporaryDirectory(prefix="fastgan-mutant-") as tmp:
        scratch = Path(tmp)
        _scratch_copy(fault, scratch)
        env = {**os.environ, "PYTHONPATH": str(scratch), "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("TRITON_INTERPRET", None)  # the suite's conftest decides
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rfE", *tests],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        seconds = time.perf_counter() - start
    if proc.returncode == 0:
        return None, seconds
    caught = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", proc.stdout, re.MULTILINE)
    if caught:
        return caught.group(1), seconds
    if proc.returncode < 0:  # e.g. an out-of-bounds access aborting the interpreter
        return f"the suite crashed (signal {-proc.returncode})", seconds
    return f"pytest exit {proc.returncode}", seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="run the faults whose name contains a TEXT")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per fault (default 900)")
    parser.add_argument(
        "--tests",
        nargs="+",
        default=["tests"],
        metavar="PATH",
        help="the pytest paths each fault runs (default: tests, the whole suite)",
    )
    args = parser.parse_args(argv)
    faults = [f for f in FAULTS if not args.only or any(t in f.name for t in args.only)]
    if args.list:
        print("\n".join(f"{f.name}  ({f.path})" for f in faults))
        return 0
    print("| fault | file | caught by | s |\n|---|---|---|---|", flush=True)
    missed = 0
    for fault in faults:
        caught, seconds = run_fault(fault, args.timeout, args.tests)
        missed += caught is None
        print(f"| {fault.name} | {fault.path} | {caught or '**not caught**'} | {seconds:.0f} |", flush=True)
    print(f"\n{len(faults) - missed} of {len(faults)} faults caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

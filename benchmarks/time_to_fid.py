"""Time to FID: the reference code's plain eager loop against fastgan's steps, one recipe, one data set.

    python -m benchmarks.time_to_fid --fid-weights inception.pt [--loss wgan-gp] [--steps 600] [--evals 6]
        [--fid 500] [--mode auto] [--device auto] [--out benchmarks/results/time_to_fid-cpu]

Both runs train the InfoGAN-style pair on Fashion-MNIST with Lucic et al.'s protocol (``--protocol lucic2018``:
batch 64, z 64-d uniform) from the same initial weights, on the same batches in the same order and the same
generator noise, for the same number of generator steps; they differ in how a step runs:
- reference: the reference code's plain eager loop (:mod:`fastgan.reference`'s style: per-sample
  interpolation, ``autograd.grad(create_graph=True)``, ``optimizer.step()``, the reference's Adam / RMSprop and the
  ``p.data.clamp_`` loop);
- fastgan: ``fastgan train``'s Trainer in ``--mode`` (auto: compile on a CPU, graph on a GPU).
The penalty points' alphas are each loop's own draws. FID is taken on ``--fid`` generated images against as many
of the test images (the same evaluation noise and network for both) every ``steps / evals`` generator steps, and
plotted against training seconds (evaluation left out); fastgan's run goes on for half as many steps again.
Reported: the reference loop's final FID, the seconds each run took to reach it (the speed-up), fastgan's FID
at the reference loop's final time, and the speed-up at the reference loop's last step (the same steps on the
same data: per-step speed, which FID's noise cannot move).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from fastgan import reference
from fastgan.train import TrainConfig, Trainer
from fastgan.train.building import latent_noise
from fastgan.train.evaluation import generate_samples
from fastgan.train.settings import Settings


def _reference_optimizer(s: Settings, module: torch.nn.Module) -> torch.optim.Optimizer:
    if s.optimizer == "rmsprop":
        return torch.optim.RMSprop(module.parameters(), lr=s.lr)
    return torch.optim.Adam(module.parameters(), lr=s.lr, betas=s.betas)


def _critic_loss(s: Settings, critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    loss, penalty = s.losses.loss, s.losses.penalty
    real_out, fake_out = critic(real), critic(fake)
    if loss == "wgan":
        value = reference.wgan_critic_loss(real_out, fake_out)
    elif loss == "lsgan":
        a, b, _ = s.lsgan_abc
        value = reference.lsgan_discriminator_loss(real_out, fake_out, a, b)
    elif loss == "ns":
        value = reference.ns_discriminator_loss(real_out, fake_out)
    else:
        value = reference.hinge_discriminator_loss(real_out, fake_out)
    if penalty in ("gp", "lp"):
        alpha = torch.rand(real.shape[0], device=real.device)
        value = (
            value
            + s.penalty_weight * reference.gradient_penalty(critic, real, fake, alpha, one_sided=penalty == "lp")[0]
        )
    elif penalty == "r1":
        value = value + s.penalty_weight * reference.squared_gradient_norm(critic, real)[0]
    elif penalty == "dragan":
        alpha, noise = torch.rand(real.shape[0], device=real.device), torch.rand_like(real)
        value = value + s.penalty_weight * reference.dragan_penalty(critic, real, alpha, noise)[0]
    return value


def _generator_loss(s: Settings, fake_out: torch.Tensor) -> torch.Tensor:
    loss = s.losses.loss
    if loss == "lsgan":
        return reference.lsgan_generator_loss(fake_out, s.lsgan_abc[2])
    if loss == "ns":
        return reference.ns_generator_loss(fake_out)
    return reference.wgan_generator_loss(fake_out)


def reference_run(trainer: Trainer, evals: list[int]) -> list[dict]:
    """The reference code's loop on ``trainer``'s models (copies of their initial state), data and settings;
    FID at the generator steps in ``evals``. Returns one record per evaluation."""
    s, device = trainer.settings, trainer.device
    generator, critic = copy.deepcopy(trainer.generator), copy.deepcopy(trainer.critic)
    opt_g, opt_d = _reference_optimizer(s, generator), _reference_optimizer(s, critic)
    records, seconds, step = [], 0.0, 0
    while step < evals[-1]:
        start = time.perf_counter()
        for _ in range(s.n_critic):
            real, _ = trainer.data.next_batch()
            z = latent_noise(s, real.shape[0], device=device)
            fake = generator(z).detach()
            opt_d.zero_grad()
            _critic_loss(s, critic, real, fake).backward()
            opt_d.step()
            if s.clip_value:
                reference.clip_weights_(critic, s.clip_value)
        opt_g.zero_grad()
        z = latent_noise(s, s.batch_size, device=device)
        _generator_loss(s, critic(generator(z))).backward()
        opt_g.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - start
        step += 1
        if step in evals:
            fid = trainer.log.image_metrics(_samples(trainer, generator))["fid"]
            records.append({"step": step, "seconds": seconds, "fid": fid})
            print(f"reference step {step}: {seconds:.1f} s, FID {fid:.2f}", flush=True)
    return records


def _samples(trainer: Trainer, generator: torch.nn.Module) -> torch.Tensor:
    return generate_samples(generator, trainer.settings, trainer.settings.fid, trainer.device)


def first_time_at(records: list[dict], fid: float) -> float | None:
    """The training seconds at which a run's FID first reaches ``fid`` (linear between evaluations), or None."""
    previous = {"seconds": 0.0, "fid": float("inf")}
    for r in records:
        if r["fid"] <= fid:
            if previous.fid == float("inf"):
                return r["seconds"]
            frac = (previous.fid - fid) / (previous.fid - r["fid"])
            return previous.seconds + frac * (r["seconds"] - previous.seconds)
        previous = r
    return None


def fid_at(records: list[dict], seconds: float) -> float | None:
    """A run's FID at ``seconds`` of training (linear between evaluations), or None before its first one or
    after its last."""
    for a, b in zip(records, records[1:]):
        if a["seconds"] <= seconds <= b["seconds"]:
            return a["fid"] + (seconds - a["seconds"]) / (b["seconds"] - a["seconds"]) * (b["fid"] - a["fid"])
    if records and abs(records[-1]["seconds"] - seconds) < 1e-9:
        return records[-1]["fid"]
    return None


def plot(results: Settings, path: Path) -> None:
    import matplotlib.pyplot as plt

    from fastgan.train.plots import matplotlib  # noqa: F401 - selects the file-only backend

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("reference", "fastgan"):
        records = results[name]
        ax.plot([r["seconds"] for r in records], [r["fid"] for r in records], marker="o", label=name)
    ax.set_xlabel("training seconds (evaluation left out)")
    ax.set_ylabel(f"FID ({results['fid_images']} images)")
    ax.set_yscale("log")
    ax.set_title(f"{results['loss']} on Fashion-MNIST, {results['machine']}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.time_to_fid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", default="wgan-gp")
    parser.add_argument("--steps", type=int, default=600, help="generator steps of each run")
    parser.add_argument("--evals", type=int, default=6, help="FID evaluations of each run, evenly spaced")
    parser.add_argument("--fid", type=int, default=500, help="generated and test images per FID")
    parser.add_argument("--fid-weights", help="the FID network's file (fastgan train --fid-weights)")
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root")
    parser.add_argument("--out", default="benchmarks/results/time_to_fid-cpu")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    every = max(1, args.steps // args.evals)
    evals = list(range(every, args.steps + 1, every))
    # fastgan trains on past the reference loop's steps, so that its FID at the reference loop's final time is
    # measured whenever it is faster.
    longer = evals[-1] + every * (-(-args.evals // 2))
    config = TrainConfig(
        protocol="lucic2018",
        loss=args.loss,
        steps=longer,
        log_every=every,
        fid=args.fid,
        fid_weights=args.fid_weights,
        mode=args.mode,
        device=args.device,
        seed=args.seed,
        data_root=args.data_root,
        checkpoint_every=10**9,
    )
    # The run's checkpoints (hundreds of MB with the optimizers' state) stay out of the results folder.
    fast = Trainer(config, Path(tempfile.mkdtemp(prefix="time_to_fid-")), quiet=False)
    # The reference loop starts from the same weights and the same data position and global RNG state.
    torch.manual_seed(args.seed)
    data_state = fast.data.state_dict()
    ref = reference_run(fast, evals)
    fast.data.load_state_dict(data_state)
    torch.manual_seed(args.seed)
    summary = fast.fit()
    fastgan_records = [{"step": h["step"], "seconds": h["wall_seconds"], "fid": h["fid"]} for h in fast.log.history]
    target = ref[-1]["fid"]
    t_ref, t_fast = first_time_at(ref, target), first_time_at(fastgan_records, target)
    results = {
        "loss": args.loss,
        "steps": {"reference": evals[-1], "fastgan": longer},
        "fid_images": args.fid,
        "mode": fast.mode,
        "machine": summary["device"]
        if summary["device"] != "cpu"
        else f"CPU ({platform.processor() or 'x86_64'}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "reference": ref,
        "fastgan": fastgan_records,
        "reference_final_fid": target,
        "seconds_to_reference_final_fid": {"reference": t_ref, "fastgan": t_fast},
        "speedup_to_reference_final_fid": (t_ref / t_fast) if t_fast else None,
        # The same steps on the same data and noise: the speed-up per step, which noise in FID cannot move.
        "speedup_at_reference_final_step": ref[-1]["seconds"]
        / next(r["seconds"] for r in fastgan_records if r["step"] == ref[-1]["step"]),
        "fastgan_fid_at_reference_final_time": fid_at(fastgan_records, ref[-1]["seconds"]),
    }
    (out / "time_to_fid.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out / "time_to_fid.png")
    speedup = results.speedup_to_reference_final_fid
    print(
        f"reference final FID {target:.2f} after {ref[-1]['seconds']:.0f} s; fastgan reached it after "
        + (f"{t_fast:.0f} s ({speedup:.2f}x)" if t_fast else "never")
        + f"; the same steps {results['speedup_at_reference_final_step']:.2f}x faster; wrote {out}/time_to_fid.json"
        ", .png"
    )
    return results


if __name__ == "__main__":
    main()

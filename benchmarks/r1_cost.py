"""``python -m benchmarks.r1_cost``: what R1 costs a critic step, exact (double backward) against approximate
(one more forward, Seaweed-APT's finite difference), on the same critic, in the same run.

Rows: the reference code's MLP critic (batch 64, 784) and the DCGAN critic for 64x64 images (batch 16), each a
whole ``CriticStep`` (RpGAN loss, R1 or approximate R1, Adam) in eager and compile mode, beside the reference's
plain step with exact R1 (``fastgan.reference``'s penalty in the reference's loop). Prints a table and writes
JSON (``--out``) with the device's name; ratios are against the reference's exact-R1 step.
"""

from __future__ import annotations

import argparse
import json
import warnings
from functools import partial

import torch

import fastgan
from fastgan import reference

from .cases import conv_critic, mlp_critic
from .timing import median_ms

MODELS = {"reference mlp": (mlp_critic, (64, 784)), "dcgan": (conv_critic, (16, 3, 64, 64))}


def _reference_r1_step(critic: torch.nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor):
    """The plain step: RpGAN loss plus gamma/2 * R1, written as the reference code writes a penalty step."""
    opt.zero_grad()
    loss = reference.rpgan_discriminator_loss(critic(real), critic(fake))
    loss = loss + 5.0 * reference.squared_gradient_norm(critic, real)[0]
    loss.backward()
    opt.step()


def measure(device: torch.device, modes: tuple[str, ...]) -> list[dict]:
    rows = []
    for name, (build, shape) in MODELS.items():
        torch.manual_seed(0)
        real, fake = torch.randn(shape, device=device), torch.randn(shape, device=device)
        critic = build().to(device)
        opt = torch.optim.Adam(critic.parameters(), lr=1e-4)
        base, timer = median_ms(partial(_reference_r1_step, critic, opt, real, fake), device)
        rows.append(dict(model=name, provider="reference r1 (eager)", ms=base, ratio=1.0, timer=timer))
        for mode in modes:
            for penalty, weight in (("r1", 5.0), ("r1-approx", 100.0)):
                critic = build().to(device)
                opt = torch.optim.Adam(critic.parameters(), lr=1e-4)
                step = fastgan.CriticStep(critic, opt, loss="rpgan", penalty=penalty, penalty_weight=weight, mode=mode)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    ms, timer = median_ms(partial(step, real, fake), device)
                fallbacks = [str(w.message) for w in caught if "eager" in str(w.message)]
                rows.append(
                    dict(
                        model=name,
                        provider=f"fastgan {penalty} ({step.mode})",
                        ms=ms,
                        ratio=base / ms,
                        timer=timer,
                        fallback=fallbacks[0] if fallbacks else None,
                    )
                )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--modes", nargs="+", default=["eager", "compile"])
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    rows = measure(device, tuple(args.modes))
    print(f"{'model':15s} {'provider':28s} {'ms':>9s} {'x reference':>12s}   ({card}, torch {torch.__version__})")
    for row in rows:
        print(f"{row['model']:15s} {row['provider']:28s} {row['ms']:9.3f} {row['ratio']:12.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": card, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

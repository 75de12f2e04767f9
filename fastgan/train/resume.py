"""A run's checkpoint as the trainer writes it and a resumed run reads it back: everything that makes the resumed
run continue as the uninterrupted one would (bitwise, on a CPU)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from . import checkpoint as checkpoint_io
from .building import load_optimizer

if TYPE_CHECKING:
    from .trainer import Trainer


def generator_state(trainer: Trainer) -> dict:
    """What ``fastgan sample`` needs to rebuild and run the generator."""
    return {
        "settings": trainer.settings.options(),
        "step": trainer.step,
        "generator": trainer.generator.state_dict(),
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "sample_shape": list(trainer.data.sample_shape),
        "classes": trainer.classes,
    }


def save_best(trainer: Trainer, fid: float) -> None:
    """Write the generator of ``trainer``'s current step as the run's lowest-FID one (best.pt), with ``fid``."""
    checkpoint_io.save_best({**generator_state(trainer), "fid": fid}, trainer.out)


def save_checkpoint(trainer: Trainer) -> None:
    """Write the checkpoint of ``trainer``'s current step."""
    state = {
        **generator_state(trainer),
        "critic": trainer.critic.state_dict(),
        "opt_g": trainer.opt_g.state_dict(),
        "opt_d": trainer.opt_d.state_dict(),
        "data": trainer.data.state_dict(),
        "history": trainer.log.history,
        "wall_seconds": trainer.elapsed(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "augment": trainer.augment.state_dict() if trainer.augment is not None else None,
        "lecam": trainer.lecam.state_dict() if trainer.lecam is not None else None,
    }
    checkpoint_io.save(state, trainer.out)


def restore_checkpoint(trainer: Trainer, state: dict) -> None:
    """Put ``trainer`` where the checkpoint ``state`` left its run."""
    trainer.step = state["step"]
    trainer.generator.load_state_dict(state["generator"])
    trainer.critic.load_state_dict(state["critic"])
    if trainer.ema is not None:
        trainer.ema.load_state_dict(state["ema"])
    load_optimizer(trainer.opt_g, state["opt_g"])
    load_optimizer(trainer.opt_d, state["opt_d"])
    trainer.data.load_state_dict(state["data"])
    trainer.log.restore(state["history"])
    if trainer.augment is not None:
        trainer.augment.load_state_dict(state["augment"])
    if trainer.lecam is not None:
        trainer.lecam.load_state_dict(state["lecam"])
    trainer.resumed_seconds = state.get("wall_seconds", 0.0)  # checkpoints before 2026-12-05 lack it
    # The steps' schedules (lazy penalty, EMA warm-up) continue where they stopped.
    trainer.critic_update.calls = trainer.step * trainer.settings.n_critic
    trainer.generator_update.calls = trainer.step
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])

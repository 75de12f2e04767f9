"""Training API: the reference's WGAN / WGAN-GP / LSGAN recipes (and relatives) on fastgan's fused ops.

    from fastgan.train import TrainConfig, train
    summary = train(TrainConfig(loss="wgan-gp", data="ring"), "runs/ring")
"""

from .config import LOSSES, PRESETS, TOY_PRESETS, TrainConfig
from .trainer import Trainer, train

__all__ = ["LOSSES", "PRESETS", "TOY_PRESETS", "TrainConfig", "Trainer", "train"]

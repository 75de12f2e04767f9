"""Training API: the reference's WGAN / WGAN-GP / LSGAN recipes (and relatives) on fastgan's fused ops.

from fastgan.train import TrainConfig, train
summary = train(TrainConfig(loss="wgan-gp", data="ring"), "runs/ring")
"""

from .config import PRESETS, TOY_PRESETS, TrainConfig
from .settings import RECIPE_NAMES, RECIPES, Recipe, Settings
from .trainer import Trainer, train

__all__ = ["PRESETS", "RECIPES", "RECIPE_NAMES", "TOY_PRESETS", "Recipe", "Settings", "TrainConfig", "Trainer", "train"]

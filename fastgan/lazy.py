"""Lazy regularization (StyleGAN2): a penalty applied every k-th step with its weight multiplied by k."""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import _input_checks


class LazyRegularizer:
    """Apply a penalty only every ``every``-th critic step, with its weight multiplied by ``every``.

    StyleGAN2's lazy regularization (R1 every 16 minibatches): the penalty's average effect is unchanged and
    its cost drops by ``every``. Use :meth:`adam_hyperparameters` for the matching optimizer correction
    (StyleGAN2: ``lr * c`` and ``beta ** c`` with ``c = every / (every + 1)``).

    Example::

        lazy = fastgan.LazyRegularizer(every=16, weight=gamma / 2)
        loss = d_loss + lazy(step, lambda: fastgan.r1_penalty(D, real))
    """

    def __init__(self, every: int, weight: float):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.every = every
        self.weight = _input_checks.finite_real("weight", weight)

    def due(self, step: int) -> bool:
        """Whether the penalty is applied at ``step`` (steps 0, every, 2*every, ...)."""
        return step % self.every == 0

    def __call__(self, step: int, penalty: Callable[[], torch.Tensor]) -> torch.Tensor | float:
        """``weight * every * penalty()`` on due steps, else ``0.0`` without calling ``penalty``."""
        if not self.due(step):
            return 0.0
        return (self.weight * self.every) * penalty()

    def adam_hyperparameters(self, lr: float, betas: tuple[float, float]) -> tuple[float, tuple[float, float]]:
        """The learning rate and betas to give the critic's Adam under this schedule (StyleGAN2's correction)."""
        c = self.every / (self.every + 1)
        return lr * c, (betas[0] ** c, betas[1] ** c)

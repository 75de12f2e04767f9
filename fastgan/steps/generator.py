"""``GeneratorStep``: one whole generator update per call (and its moving average)."""

from __future__ import annotations

import torch
from torch import nn

from .. import _input_checks, distributed
from ..augment import Augment, augmentation
from ..kernels.loss_terms import PAIRED
from ..losses import LOSS_NAMES, RELATIVISTIC, terms_of_loss
from ..regularizers import ZCR_SIGMA
from .modes import check_mode
from .objectives import GeneratorObjective
from .precision import check_precision
from .runner import Runner
from .state import ModuleState, copy_module


class GeneratorStep:
    """One whole generator step per call: ``stats = step(noise)``, or ``step(noise, labels=y)`` for a
    class-conditional pair (``generator(noise, y)`` scored by ``critic(fake, y)``); a relativistic loss also takes
    the real batch: ``step(noise, real=x)`` (and ``real_labels=``).

    Args:
        generator: module mapping (B, ...) noise (and labels) to samples.
        critic: the critic scoring them. It is called, not trained: none of its parameters gets a gradient,
            and its ``requires_grad`` flags are left as they are (its buffers advance as in any call).
        optimizer: the generator's optimizer (it must hold every generator parameter that requires grad).
        loss: ``"wgan"``, ``"lsgan"``, ``"ns"``, ``"hinge"``, ``"rpgan"`` or ``"ragan"`` (the generator side of
            :mod:`fastgan.losses`; the relativistic ones score the real batch too, after the generated one, with
            the critic's scores of it detached).
        ema: decay of an exponential moving average of the generator, kept in ``self.ema`` and updated after
            every step (with a warm-up: the decay is ``min(ema, (1 + t) / (10 + t))`` at step t), or None.
        mode, precision: as for :class:`fastgan.CriticStep` (``"bf16"``: the generator's and the critic's forward
            and backward under bf16 autocast, the loss in fp32).
        augment: the critic's augmentation (:class:`fastgan.CriticStep`'s ``augment``; give both steps the same
            :class:`fastgan.Augment`): the generated batch, and a relativistic loss's real batch, are augmented
            before the critic scores them (DiffAugment), each by its own parameters, or None.
        zcr_weight: zCR's lambda_gen (0.5 in its paper), or 0 for none: the generator also runs on the latents moved
            by N(0, ``zcr_sigma``^2) (0.03), and the loss subtracts lambda_gen times the mean squared difference of
            the two batches of samples (diverse samples for nearby latents); ``latent_consistency`` in the stats.
        lsgan_targets: LSGAN's (a, b, c).
        process_group: as for :class:`fastgan.CriticStep` (the gradients are averaged over its ranks; a
            ``DistributedDataParallel`` generator or critic is unwrapped, the generator's group used).

    Returns (from a call): ``{"loss": ...}``, a detached 0-dim tensor. ``terms`` holds the loss's
    :class:`fastgan.losses.LossTerms`.
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        loss: str,
        ema: float | None = None,
        mode: str = "auto",
        precision: str = "fp32",
        augment: str | Augment | None = None,
        zcr_weight: float = 0.0,
        zcr_sigma: float = ZCR_SIGMA,
        lsgan_targets: tuple[float, float, float] = (0.0, 1.0, 1.0),
        process_group: torch.distributed.ProcessGroup | None = None,
    ):
        generator, group = distributed.unwrap(generator, process_group)
        critic = distributed.unwrap(critic)[0]
        for name, module in (("generator", generator), ("critic", critic)):
            if not isinstance(module, nn.Module):
                raise TypeError(f"{name} must be an nn.Module, got {type(module).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if loss not in LOSS_NAMES:
            raise ValueError(f"loss must be one of {LOSS_NAMES}, got {loss!r}")
        if ema is not None and not 0.0 <= _input_checks.finite_real("ema", ema) < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema}")
        self.generator, self.critic, self.optimizer, self.group = generator, critic, optimizer, group
        self.requested_mode, self.precision = check_mode(mode), check_precision(precision)
        self.decay, self.loss = ema, loss
        self.ema = copy_module(generator).requires_grad_(False) if ema is not None else None
        self.terms = terms_of_loss(loss, lsgan_targets)
        self.augment = augmentation(augment)
        zcr = (
            _input_checks.non_negative_real("zcr_weight", zcr_weight),
            _input_checks.positive_real("zcr_sigma", zcr_sigma),
        )
        objective = GeneratorObjective(
            ModuleState(generator, "generator", optimizer),
            ModuleState(critic, "critic"),
            self.terms,
            self.ema,
            precision,
            self.augment,
            distributed.Shard.of(group),
            zcr,
        )
        self._objective = objective
        self._runner = Runner(type(self).__name__, objective, optimizer, self.requested_mode, group)
        self.calls = 0

    @property
    def mode(self) -> str | None:
        """The mode in use (None before the first call): ``requested_mode`` resolved, or eager after a fallback."""
        return self._runner.mode

    def __call__(
        self,
        noise: torch.Tensor,
        *,
        labels: torch.Tensor | None = None,
        real: torch.Tensor | None = None,
        real_labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One generator step from a batch of noise (B, ...), with the batch's labels (B, ...) for a conditional
        pair. ``real`` (B', ...): the real batch a relativistic loss compares with (RpGAN pairs it with the
        generated batch by position: B' = B), ``real_labels`` its labels (default: ``labels``)."""
        _input_checks.batched("noise", _input_checks.float_tensor("noise", noise))
        if labels is not None:
            labels = _input_checks.labels("labels", labels, noise)
        terms = self.terms
        if terms.relativistic:
            if real is None:
                raise ValueError(f"the relativistic loss {self.loss!r} needs the real batch: step(noise, real=x)")
            real = _input_checks.batched("real", _input_checks.float_tensor("real", real)).detach()
            _input_checks.same_device("real", real, "noise", noise)
            if terms.relation == PAIRED and real.shape[0] != noise.shape[0]:
                raise ValueError(
                    f"real is paired with the generated batch by position: {real.shape[0]} samples for "
                    f"{noise.shape[0]} noise vectors"
                )
            if real_labels is not None:
                if labels is None:
                    raise ValueError("real_labels needs labels (the generated batch's labels) too")
                real_labels = _input_checks.labels("real_labels", real_labels, real)
            elif labels is not None:
                real_labels = labels if real.shape[0] == noise.shape[0] else None
                if real_labels is None:
                    raise ValueError("real_labels is needed where real and noise batches differ in size")
        elif real is not None or real_labels is not None:
            raise ValueError(f"real and real_labels are for the relativistic losses {RELATIVISTIC}, not {self.loss!r}")
        if self.ema is not None:
            objective = self._objective
            if objective.ema_weight is None:
                objective.ema_weight = torch.zeros((), device=noise.device, dtype=next(self.ema.parameters()).dtype)
            # Warm-up (as in many EMA implementations): early on the average follows the generator closely.
            objective.ema_weight.fill_(1.0 - min(self.decay or 0.0, (1 + self.calls) / (10 + self.calls)))
        stats = self._runner((noise, labels, real, real_labels))
        self.calls += 1
        return stats

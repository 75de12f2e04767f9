"""``CriticStep``: one whole critic (discriminator) update per call."""

from __future__ import annotations

import torch
from torch import nn

from .. import _input_checks, distributed
from ..augment import Augment, augmentation
from ..lazy import LazyRegularizer
from ..losses import LOSS_NAMES, LossTerms, terms_of_loss
from ..penalties import APPROXIMATION_SIGMA, PENALTIES, PenaltyKind, has_batch_statistics, warn_batchnorm
from ..regularizers import BCR_POLICY, LECAM_DECAY, LeCam, consistency_policy, weights
from .modes import check_mode
from .objectives import CriticObjective
from .precision import check_precision
from .runner import Runner
from .state import ModuleState


class CriticStep:
    """One whole critic (discriminator) step per call: ``stats = step(real, fake)``, or
    ``step(real, fake, labels=y, fake_labels=y_fake)`` for a conditional critic ``critic(x, y)``.

    One call is zero grad, the critic's scores, the loss, the penalty, backward, the optimizer's step and
    clipping, in the chosen mode (:mod:`fastgan.steps`). The trained parameters are the critic's parameters that
    require grad (the optimizer must hold each of them); frozen ones are neither given a gradient nor changed.

    Args:
        critic: module mapping (B, ...) samples (and, when called with labels, (B, ...) labels) to (B,) or
            (B, 1) scores.
        optimizer: the critic's optimizer (for ``mode="graph"`` one with a ``capturable`` option, e.g. Adam).
        loss: ``"wgan"``, ``"lsgan"``, ``"ns"``, ``"hinge"``, ``"rpgan"`` or ``"ragan"`` (the critic side of
            :mod:`fastgan.losses`; RpGAN pairs the i-th real and fake sample, so both batches have one size), or
            None for penalty-only steps.
        penalty: None or a name in :data:`fastgan.penalties.PENALTIES`: ``"gp"``, ``"lp"``, ``"zero-centred"``,
            ``"r1"``, ``"r2"``, ``"r1+r2"`` (R3GAN's: both, added), ``"dragan"``, or the approximate
            ``"r1-approx"`` and ``"r2-approx"`` (a finite difference along Gaussian noise: no double backward).
        penalty_weight: lambda (GP, LP, DRAGAN, the approximate penalties: 100 in their paper) or gamma / 2 (R1,
            R2, R1 + R2), > 0.
        penalty_sigma: the approximate penalties' noise scale sigma (0.01 in their paper), > 0.
        clip_value: clamp the trained parameters to [-c, c] after each update (WGAN), or None.
        lazy_every: apply the penalty every k-th call only, as its own penalty-only update with weight
            ``penalty_weight * k`` after the loss update (StyleGAN2's lazy regularization); 1 puts the penalty
            into every update.
        mode: ``"auto"``, ``"eager"``, ``"compile"``, ``"graph"`` or ``"compile+graph"`` (see
            :mod:`fastgan.steps`).
        precision: ``"fp32"``, or ``"bf16"``: the critic's forward and backward under bf16 autocast, with its
            parameters, the optimizer's state, the input-gradient norms, the penalty and the losses in fp32, in
            every mode (:mod:`fastgan.steps.precision`).
        scaler: a ``torch.amp.GradScaler`` for fp16 autocast (eager mode: compile falls back to eager with it,
            ``mode="graph"`` refuses it, ``auto`` runs eager).
        augment: differentiable augmentation before the critic (DiffAugment; ADA's adaptive p): a policy such as
            ``"color,translation,cutout"`` or a :class:`fastgan.Augment` (give the same one to the
            :class:`fastgan.GeneratorStep`, which augments what it scores too), or None. Real and fake are each
            augmented by their own parameters; a penalty's points are made of the un-augmented samples and its
            input gradient goes through the augmentation of the batch they come from (R1, GP, DRAGAN and the
            approximate R1: the real batch's; R2: the fake one's), StyleGAN2-ADA's R1. With an adaptive
            ``Augment`` each update's mean sign of the augmented reals' scores steers its p (``real_sign``).
        lecam_weight: LeCam's lambda (Tseng et al. 2021; 0.3 in its paper with DiffAugment), or 0 for none: the
            critic's scores pulled towards moving averages of the other batch's (decay ``lecam_decay``, 0.99).
        bcr_weight: bCR's (lambda_real, lambda_fake), or one number for both (10 in its paper), or 0 for none:
            each batch's scores against its scores after ``bcr_policy``'s augmentation (translation by up to 1/8).
            Not with ``augment``.
        zcr_weight: zCR's lambda_dis (5 in its paper), or 0: the generated batch's scores against those of
            ``fake_moved``, samples of the same latents moved by N(0, sigma^2) (sigma 0.03), given with each call.
        lsgan_targets: LSGAN's (a, b, c).
        label_smoothing: one-sided label smoothing of the ``"ns"`` loss: the real samples' target is
            ``1 - label_smoothing`` (Salimans et al., 2016; 0.1 is usual); 0 for none.
        joint_pass: score real and fake in one critic pass over both batches (concatenated) when the critic
            has no batch statistics (no BatchNorm in training mode); False keeps two passes.
        process_group: with several processes (``torch.distributed``), the group whose ranks train this
            critic together: each update's gradients are averaged over its ranks (one flat all-reduce), and
            alpha and noise are drawn for the global batch and sliced, so N processes with B rows each train
            the model one process trains with N * B rows. A ``DistributedDataParallel`` critic is unwrapped
            and its group used. Not with ``mode="graph"``.

    A call returns a dict of detached 0-dim tensors on the device, read without a host sync: ``loss`` (the
    loss update's objective, penalty included when it is in it), with a loss ``wasserstein`` (mean real score
    minus mean fake score), and on calls that apply the penalty ``penalty`` (unweighted), ``grad_norm_mean``
    and ``grad_norm_max`` (of the per-sample input-gradient norms; not for the approximate penalties, which take
    no input gradient), with an adaptive augmentation ``real_sign`` (the mean sign of the augmented reals'
    scores), with the regularizers ``lecam`` (and ``lecam_ema_real``, ``lecam_ema_fake``: its averages after the
    update), ``consistency`` (bCR, weighted), ``latent_consistency`` (zCR, unweighted). ``terms`` holds the
    loss's :class:`fastgan.losses.LossTerms` (None without a loss).
    """

    def __init__(
        self,
        critic: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        loss: str | None,
        penalty: str | None = None,
        penalty_weight: float = 10.0,
        penalty_sigma: float = APPROXIMATION_SIGMA,
        clip_value: float | None = None,
        lazy_every: int = 1,
        mode: str = "auto",
        precision: str = "fp32",
        scaler: torch.amp.GradScaler | None = None,
        augment: str | Augment | None = None,
        lecam_weight: float = 0.0,
        lecam_decay: float = LECAM_DECAY,
        bcr_weight: float | tuple[float, float] = 0.0,
        bcr_policy: str = BCR_POLICY,
        zcr_weight: float = 0.0,
        lsgan_targets: tuple[float, float, float] = (0.0, 1.0, 1.0),
        label_smoothing: float = 0.0,
        joint_pass: bool = False,
        process_group: torch.distributed.ProcessGroup | None = None,
    ):
        critic, group = distributed.unwrap(critic, process_group)
        if not isinstance(critic, nn.Module):
            raise TypeError(f"critic must be an nn.Module, got {type(critic).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if loss is None and penalty is None:
            raise ValueError("loss and penalty cannot both be None")
        if loss is not None and loss not in LOSS_NAMES:
            raise ValueError(f"loss must be one of {LOSS_NAMES} or None, got {loss!r}")
        if penalty is not None and penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {tuple(PENALTIES)} or None, got {penalty!r}")
        if isinstance(lazy_every, bool) or not isinstance(lazy_every, int) or lazy_every < 1:
            raise ValueError(f"lazy_every must be a positive int, got {lazy_every!r}")
        if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
            raise TypeError(f"scaler must be a torch.amp.GradScaler or None, got {type(scaler).__name__}")
        if check_precision(precision) == "bf16" and scaler is not None:
            raise ValueError("precision='bf16' takes no scaler (a GradScaler is for fp16 autocast)")
        if not isinstance(joint_pass, bool):
            raise TypeError(f"joint_pass must be a bool, got {type(joint_pass).__name__}")
        weight = (_input_checks.positive_real if penalty is not None else _input_checks.non_negative_real)(
            "penalty_weight", penalty_weight
        )
        sigma = _input_checks.positive_real("penalty_sigma", penalty_sigma)
        clip_value = None if clip_value is None else _input_checks.positive_real("clip_value", clip_value)
        terms = terms_of_loss(loss, lsgan_targets, label_smoothing) if loss is not None else None
        self.augment = augmentation(augment)
        lecam_weight = _input_checks.non_negative_real("lecam_weight", lecam_weight)
        self.lecam = LeCam(lecam_weight, lecam_decay) if lecam_weight else None
        bcr_weights = weights("bcr_weight", bcr_weight)
        bcr = (bcr_weights, consistency_policy(bcr_policy)) if any(bcr_weights) else None
        self.zcr = _input_checks.non_negative_real("zcr_weight", zcr_weight)
        if loss is None and (self.lecam or bcr or self.zcr):
            raise ValueError("lecam_weight, bcr_weight and zcr_weight regularize the loss update: give a loss")
        if bcr is not None and self.augment is not None:
            raise ValueError(
                "bcr_weight compares the critic's scores of the samples with its scores of their augmentation: "
                "not with augment, which already augments what the critic scores"
            )
        self.critic, self.optimizer, self.group, self.terms = critic, optimizer, group, terms
        self.requested_mode, self.precision = check_mode(mode), precision
        self.state = ModuleState(critic, "critic", optimizer)
        if penalty is not None:
            warn_batchnorm(critic, stacklevel=3)
        # One critic pass over real and fake together, unless samples interact (batch statistics) or the caller
        # asks for separate passes.
        joint = joint_pass and not has_batch_statistics(critic)
        # The schedule and the weight of a lazy penalty update: fastgan.LazyRegularizer's rule.
        self.lazy = LazyRegularizer(lazy_every if penalty is not None else 1, weight)
        lazy = self.lazy.every > 1
        shard = self.shard = distributed.Shard.of(group)
        kind = PENALTIES[penalty] if penalty is not None else None

        def runner(terms: LossTerms | None, kind: PenaltyKind | None, weight: float) -> Runner:
            objective = CriticObjective(
                self.state,
                terms,
                kind,
                weight,
                joint,
                scaler,
                clip_value,
                shard,
                precision,
                sigma,
                self.augment,
                self.lecam if terms is not None else None,
                bcr if terms is not None else None,
                self.zcr if terms is not None else 0.0,
            )
            return Runner(type(self).__name__, objective, optimizer, self.requested_mode, group)

        self._main = runner(terms, None if lazy else kind, weight) if loss is not None else None
        self._penalty = (
            runner(None, kind, self.lazy.weight * self.lazy.every)
            if kind is not None and (lazy or loss is None)
            else None
        )
        self.calls = 0

    @property
    def _first(self) -> Runner:
        """The runner of the loss update, or of the penalty-only update where there is no loss."""
        runner = self._main or self._penalty
        assert runner is not None  # a loss, a penalty or both
        return runner

    @property
    def mode(self) -> str | None:
        """The mode in use (None before the first call): ``requested_mode`` resolved, or eager after a fallback."""
        return self._first.mode

    def resolve_mode(self, device: torch.device) -> str:
        """The mode the first call on ``device`` resolves ``requested_mode`` to, with its side effects (for
        the graph modes the optimizer made capturable); what ``auto`` picks for this critic and optimizer."""
        return self._first.resolve_mode(device)

    def __call__(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        *,
        labels: torch.Tensor | None = None,
        fake_labels: torch.Tensor | None = None,
        fake_moved: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One critic step on a batch of real and generated samples (B, ...) of one shape, dtype and device.

        ``labels`` (B, ...): the real samples' labels (class indices, or any tensor the critic takes), for a
        conditional critic called ``critic(x, y)``; ``fake_labels``: the generated samples' (default:
        ``labels``). Penalty points carry the labels of the real samples they are made from (R2: the fake ones).
        ``fake_moved``: with ``zcr_weight``, samples generated from the fake batch's latents moved by
        N(0, sigma^2) (:data:`fastgan.regularizers.ZCR_SIGMA`), in the fake batch's shape, labels and order.
        """
        _input_checks.pair(real, fake)
        if self.augment is not None and real.dim() != 4:
            raise ValueError(f"augment needs (B, C, H, W) images: real and fake have shape {tuple(real.shape)}")
        if labels is not None:
            labels = _input_checks.labels("labels", labels, real)
            fake_labels = labels if fake_labels is None else _input_checks.labels("fake_labels", fake_labels, fake)
        elif fake_labels is not None:
            raise ValueError("fake_labels needs labels (the real samples' labels) too")
        if self.zcr and fake_moved is None:
            raise ValueError("zcr_weight needs fake_moved: samples of the fake batch's latents moved by N(0, sigma^2)")
        if fake_moved is not None:
            if not self.zcr:
                raise ValueError("fake_moved is zCR's input: give zcr_weight > 0 too")
            _input_checks.pair(fake, fake_moved, "fake", "fake_moved")
            fake_moved = fake_moved.detach()
        if self.lecam is not None:
            self.lecam.to(real.device)
        inputs = (real.detach(), fake.detach(), labels, fake_labels, fake_moved)
        stats: dict[str, torch.Tensor] = {}
        if self._main is not None:
            stats = self._main(inputs)
            if self.augment is not None and self.augment.adaptive:
                self.augment.observe(stats["real_sign"], real.shape[0] * self.shard.world_size)
            if self.lecam is not None:  # the averages the update moved, kept for the next one
                self.lecam.ema.copy_(torch.stack([stats["lecam_ema_real"], stats["lecam_ema_fake"]]))
        if self._penalty is not None and self.lazy.due(self.calls):
            # The penalty update's statistics, with the loss update's loss and Wasserstein estimate.
            stats = {**self._penalty(inputs), **stats}
        self.calls += 1
        return stats

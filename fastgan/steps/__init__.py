"""Whole training steps: one call is zero grad, forward, loss, penalty, backward, optimizer step and clipping
(and the EMA update for the generator), eager, compiled, or replayed as one CUDA graph.

    critic_step = fastgan.CriticStep(D, opt_d, loss="wgan", penalty="gp", penalty_weight=10.0, mode="compile")
    generator_step = fastgan.GeneratorStep(G, D, opt_g, loss="wgan", ema=0.999)
    for real in batches:
        stats = critic_step(real, G(z).detach())   # detached tensors: no host sync
        generator_step(torch.randn(B, latent, device=real.device))

Conditional GANs pass the labels: ``critic_step(real, fake, labels=y, fake_labels=y_fake)`` calls
``critic(x, y)``; ``generator_step(z, labels=y)`` calls ``generator(z, y)`` and ``critic(fake, y)``.

Precision (``precision=``): ``"fp32"``, or ``"bf16"``: the networks' forward and backward under bf16 autocast,
with fp32 parameters, optimizer state, input-gradient norms, penalty and losses, the same in every mode
(:mod:`fastgan.steps.precision`).

Modes (``mode=``):

- ``eager``: the fused ops of :mod:`fastgan`, step by step.
- ``compile``: the objective written with ``torch.func`` (``functional_call`` and a nested ``grad``, which
  ``torch.compile`` traces where ``autograd.grad(create_graph=True)`` is refused), compiled whole with
  ``fullgraph=True`` and without the zero branches of the double backward (:mod:`fastgan.steps.compiled.zero_branches`).
  Adam's, AdamW's and RMSprop's update runs inside the same graph (:mod:`fastgan.steps.compiled.optimizer_update`;
  parameters
  are then left without ``.grad``); other optimizers' step is compiled apart. The first call for each input
  shape also computes the eager step's gradients and buffer updates, from the same state and random numbers,
  and compares (:mod:`fastgan.steps.compiled.check`); a mismatch warns and falls back to eager for good. Where
  compiling is impossible (no C compiler, BatchNorm in training mode under a penalty, an fp16 ``GradScaler``,
  a torch that cannot trace it) the step warns once, saying why, and runs eager.
- ``graph`` (CUDA): the eager step captured once per input shape as one CUDA graph (warm-up step on a side
  stream, static inputs, the optimizer made capturable, alpha and noise drawn inside the graph), replayed
  on every call; ``ValueError`` on CPU tensors, with a process group or with an fp16 ``GradScaler``.
- ``compile+graph`` (CUDA): compile mode whose compiled step (the optimizer's update in its graph: Adam, AdamW,
  RMSprop) is captured as one CUDA graph per input shape from the third call (the first is checked, the second
  builds the update in the graph), replayed after; a capture that fails warns and leaves compile mode. Refused
  as ``graph`` is (CPU tensors, a process group, an fp16 ``GradScaler``); where compiling is impossible, graph.
- ``auto``: :func:`auto_mode`: ``compile`` on a CPU (``eager`` for a module with convolutions); ``graph`` on
  CUDA in one process (``compile`` where the optimizer cannot be made capturable or a process group is given).

Every mode leaves the modules as eager steps would (:mod:`fastgan.steps.runner`): every buffer (spectral
norm's u and v, BatchNorm's statistics and counters) advanced once per call, frozen parameters untouched and
still frozen, tensors replaced between calls (``critic.labels = y``, ``load_state_dict(assign=True)``) used,
and dropout drawing eager's masks. Every mode draws the same random numbers from the default generators, in
this order and before the modules' own draws: a critic update's augmentation parameters (``torch.rand((B, 10))``
for the real batch, then the fake one), bCR's (the same way), alpha ``torch.rand(B)`` and the penalty's noise
(DRAGAN's ``torch.rand(real.shape)``, the approximate penalties' ``torch.randn``) in fp32 whatever its memory
format; a generator update's augmentation parameters (generated batch, then real) and zCR's latent noise. So the
same seed trains the same model in any mode. With a process
group of N ranks each holding B rows, they are drawn for all N * B rows on every rank and each keeps its own,
so the same seed also trains the same model on any number of processes.
"""

from .critic import CriticStep
from .generator import GeneratorStep
from .modes import MODES, auto_mode

__all__ = ["MODES", "CriticStep", "GeneratorStep", "auto_mode"]

"""The terms the fused GAN-loss kernel is built from; plain Python (no triton import), so ``fastgan.losses``
can describe its losses without importing triton.

A loss is ``sum_k weight_k * mean(f_k(x_k))`` over one or two critic outputs, each f one of:
  LINEAR    f(x) = x                      (WGAN, hinge generator)
  SQUARE    f(x) = (x - param)^2          (LSGAN, target param)
  LOGISTIC  f(x) = softplus(x) - param*x  (cross-entropy of logits x with target param: label 1, 0, or a
                                          smoothed label such as 0.9)
  HINGE     f(x) = max(0, 1 + param * x)  (hinge: param -1 for real, +1 for fake)

and x one of (the relation of the two outputs a and b):
  SEPARATE  x = a_i for the first term, b_j for the second     (every loss scoring samples alone)
  PAIRED    x = a_i - b_i for the one term (a and b of one size) (RpGAN, R3GAN's pairing; the approximate R1/R2)
  AVERAGE   x = a_i - mean(b) for the first term, b_j - mean(a) for the second (RaGAN)
"""

from __future__ import annotations

from typing import NamedTuple

LINEAR, SQUARE, LOGISTIC, HINGE = 0, 1, 2, 3
SEPARATE, PAIRED, AVERAGE = 0, 1, 2


class Term(NamedTuple):
    """``weight * mean(f(x))`` with f chosen by ``kind`` and its ``param``. A tuple: every launch hashes its terms
    into a cache key, which costs a C call for a tuple and a Python one for a dataclass."""

    kind: int
    param: float = 0.0
    weight: float = 1.0


NO_TERM = Term(LINEAR, 0.0, 0.0)

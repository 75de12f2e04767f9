"""fastgan: fused Triton kernels for stable GAN training (WGAN, WGAN-GP, LSGAN), as drop-in autograd ops.

CUDA tensors run the Triton kernels, other tensors an eager PyTorch path with the same semantics; see
:mod:`fastgan.backend` to force one.
"""

from . import losses, penalties
from .augment import Augment, augment, augment_params
from .backend import use_backend
from .clipping import clip_weights_
from .interpolation import interpolate
from .lazy import LazyRegularizer
from .losses import *  # noqa: F403 - the loss functions are part of the top-level API
from .norm_penalty import gradient_norm_penalty
from .penalties import (
    approximate_r1_penalty,
    approximate_r2_penalty,
    compute_gradient_penalty,
    dragan_penalty,
    gradient_penalty,
    r1_penalty,
    r2_penalty,
    zero_centered_gradient_penalty,
)
from .steps import CriticStep, GeneratorStep

__version__ = "0.1.0"

__all__ = [
    "Augment",
    "CriticStep",
    "GeneratorStep",
    "LazyRegularizer",
    "approximate_r1_penalty",
    "augment",
    "augment_params",
    "approximate_r2_penalty",
    "clip_weights_",
    "compute_gradient_penalty",
    "dragan_penalty",
    "gradient_norm_penalty",
    "gradient_penalty",
    "interpolate",
    "losses",
    "penalties",
    "r1_penalty",
    "r2_penalty",
    "use_backend",
    "zero_centered_gradient_penalty",
    *losses.__all__,
]

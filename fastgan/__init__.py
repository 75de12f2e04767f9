"""fastgan: fused Triton kernels for stable GAN training (WGAN, WGAN-GP, LSGAN), as drop-in autograd ops.

CUDA tensors run the Triton kernels, other tensors an eager PyTorch path with the same semantics; see
:mod:`fastgan.backend` to force one.
"""

from .backend import use_backend
from .clipping import clip_weights_
from .interpolation import interpolate
from .penalty import compute_gradient_penalty, gradient_norm_penalty, gradient_penalty

__version__ = "0.1.0"

__all__ = [
    "clip_weights_",
    "compute_gradient_penalty",
    "gradient_norm_penalty",
    "gradient_penalty",
    "interpolate",
    "use_backend",
]

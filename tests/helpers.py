"""Shared test helpers: float64 oracles and dtype-aware tolerances (after FlagGems' accuracy utilities)."""

import torch

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# (rtol, atol) for one rounding in the output dtype.
_TOL = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1.3e-6, 1e-5),
    torch.float16: (1e-3, 1e-3),
    torch.bfloat16: (1.6e-2, 1e-2),
}


def assert_close_to_ref(actual, expected64, dtype, scale=None):
    """Compare ``actual`` (any dtype) with a float64 ``expected64`` at ``dtype``'s tolerance.

    ``scale``: absolute tolerances are multiplied by it (use the largest expected magnitude for outputs that
    are a product of many terms).
    """
    rtol, atol = _TOL[dtype]
    if scale is not None:
        atol = atol * max(float(scale), 1.0)
    torch.testing.assert_close(actual.double(), expected64, rtol=rtol, atol=atol, equal_nan=True)


def make(shape, dtype, device, layout="contiguous", seed=0):
    """A random tensor of ``shape``.

    ``layout``: contiguous, channels_last, batch_sliced (``x[::2]``) or strided (a view with non-dense samples).
    """
    gen = torch.Generator().manual_seed(seed)
    if layout == "batch_sliced":
        # Every other sample: rows are dense but spaced 2 * D apart (used without a copy).
        full = torch.randn(2 * shape[0], *shape[1:], generator=gen, dtype=torch.float64)
        return full.to(device=device, dtype=dtype)[::2]
    if layout == "strided":
        # Every other element of the last dim: samples are not dense, so the ops must copy or stride.
        wide = torch.randn(*shape[:-1], 2 * shape[-1], generator=gen, dtype=torch.float64)
        return wide.to(device=device, dtype=dtype)[..., ::2]
    x = torch.randn(*shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


# Shapes from the issue: the trivial case, a prime-sized one, 2^10 + 17, the seed's MNIST batch, a batch above the CUDA
# grid's 65535 on one sample per program, an image batch, and a sample above 65536 elements.
SHAPES = [
    ((1, 1), "contiguous"),
    ((3, 7), "contiguous"),
    ((17, 1041), "contiguous"),
    ((64, 784), "contiguous"),
    ((70000, 2), "contiguous"),
    ((4, 3, 64, 64), "contiguous"),
    ((4, 3, 64, 64), "channels_last"),
    ((5, 3, 13, 17), "strided"),
    ((6, 2, 9, 11), "batch_sliced"),
    ((2, 3, 150, 150), "contiguous"),
]
SHAPE_IDS = [f"{'x'.join(map(str, s))}-{lay}" for s, lay in SHAPES]

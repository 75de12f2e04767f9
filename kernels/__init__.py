"""Triton kernels and their thin launchers (installed as ``fastgan.kernels``).

Launchers take raw tensors laid out as rows: sample ``i`` is the dense run of ``D`` elements starting at
``ptr + i * stride(0)`` (true of contiguous and channels_last tensors and of batch-sliced views of them).
There is no autograd and no input checking here; ``fastgan`` validates inputs and normalises layouts first.
Importing this package imports triton, so set ``TRITON_INTERPRET=1`` before it to run on CPU tensors.
"""

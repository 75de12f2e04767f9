"""Triton kernels and their thin launchers (installed as ``fastgan.kernels``).

Launchers take raw tensors laid out as rows: sample ``i`` is the dense run of ``D`` elements starting at
``ptr + i * stride(0)`` (true of contiguous and channels_last tensors and of batch-sliced views of them).
There is no autograd here; ``fastgan`` validates inputs and normalises layouts first, and its ops tell the
launchers so (``check=False``): a direct call still has its preconditions checked (``_preconditions``). Every
kernel launches through :class:`launch.DirectKernel`.
Importing this package imports triton, so set ``TRITON_INTERPRET=1`` before it to run on CPU tensors.
"""

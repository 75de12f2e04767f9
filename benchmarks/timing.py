"""Timers and the device's copy bandwidth, the yardstick for memory-bound kernels."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _cpu_median_ms(fn: Callable[[], object], min_seconds: float = 0.2, max_reps: int = 200) -> float:
    for _ in range(3):
        fn()
    samples = []
    deadline = time.perf_counter() + min_seconds
    while len(samples) < 5 or (time.perf_counter() < deadline and len(samples) < max_reps):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def median_ms(fn: Callable[[], object], device: torch.device, cuda_graph: bool = False) -> tuple[float, str]:
    """Median time of ``fn`` in milliseconds and the timer used.

    On CUDA: ``triton.testing.do_bench`` (median), or ``do_bench_cudagraph`` when ``cuda_graph`` (launch-bound
    sizes: removes the host's launch overhead from every provider alike); a function that cannot be captured
    falls back to ``do_bench``. On CPU: the median of repeated ``perf_counter`` runs.
    """
    if device.type != "cuda":
        return _cpu_median_ms(fn), "perf_counter"
    import triton.testing

    if cuda_graph:
        try:
            return triton.testing.do_bench_cudagraph(fn, return_mode="median"), "cuda_graph"
        except Exception:  # noqa: BLE001 - e.g. a provider that syncs with the host; time it without a graph
            torch.cuda.synchronize()
    return triton.testing.do_bench(fn, return_mode="median"), "do_bench"


# CUDA runtime and driver calls the profiler records on the host, by what they ask of the device.
_RUNTIME_CALLS = {"launches": ("LaunchKernel", "GraphLaunch"), "copies": ("Memcpy",), "waits": ("Synchronize",)}


def device_work(fn: Callable[[], object]) -> dict[str, float]:
    """What one call of ``fn`` (already warmed up) asks of a CUDA device.

    ``kernels``: the device operations torch.profiler sees (kernels, copies, fills). The host's runtime calls:
    ``launches`` (kernels and CUDA graphs, PyTorch's and Triton's), ``copies`` (memcpy, e.g. a CPU scalar sent to
    the device), ``waits`` (stream, event and device synchronize) and ``wait_us``, the host's time in those (idle
    until the device catches up). ``syncs``: the calls ``torch.cuda.set_sync_debug_mode`` warns about
    (``.item()``, blocking copies)."""
    import warnings

    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()  # the last runtime call: not counted
    events = prof.events()
    work = {"kernels": sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)}
    calls = sorted(
        (e for e in events if e.device_type == torch.autograd.DeviceType.CPU and e.name.startswith(("cuda", "cu"))),
        key=lambda e: e.time_range.start,
    )
    if calls:  # a profiler that records no runtime calls leaves these out rather than report zeros
        calls = calls[:-1] if "Synchronize" in calls[-1].name else calls  # the synchronize above
        for key, marks in _RUNTIME_CALLS.items():
            work[key] = sum(1 for e in calls if any(m in e.name for m in marks))
        work["wait_us"] = round(sum(e.cpu_time_total for e in calls if "Synchronize" in e.name), 1)
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    return {**work, "syncs": sum("synchroniz" in str(w.message) for w in caught)}


def warm_process(device: torch.device) -> float | None:
    """Allocate what a process allocates once, on the first matmul of each thread, before any provider's first
    call is measured (:func:`first_call_peak_mb`): cuBLAS keeps a workspace per handle and stream, handles are
    per thread, and autograd's backward runs on a thread of its own, so that otherwise whichever provider runs a
    backward first is charged with it. Runs a linear and a convolutional layer's forward, backward and double
    backward in fp32 and under bf16 autocast. Returns the MiB that stayed allocated (CUDA; None elsewhere)."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
    layers = torch.nn.Linear(64, 64).to(device), torch.nn.Conv2d(3, 8, 3).to(device)
    for bf16 in (False, True):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            for layer, shape in zip(layers, ((8, 64), (8, 3, 16, 16))):
                x = torch.randn(shape, device=device, requires_grad=True)
                (grad,) = torch.autograd.grad(layer(x).square().sum(), x, create_graph=True)
                grad.square().sum().backward()
    del layers, x, grad
    if not cuda:
        return None
    torch.cuda.synchronize(device)
    return (torch.cuda.memory_allocated(device) - before) / 2**20


def first_call_peak_mb(fn: Callable[[], object]) -> float:
    """MiB a CUDA call of ``fn`` adds at its peak over what was allocated before it (``max_memory_allocated``).
    Meant for a step's first call, which also allocates what later calls keep: gradients, the optimizer's state
    and, in graph modes, the captured graph's memory pool (per captured shape)."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def copy_bandwidth_gbs(device: torch.device, megabytes: int = 256) -> float:
    """Measured device-to-device copy bandwidth in GB/s (bytes read + bytes written per second)."""
    n = megabytes * 2**20 // 4
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    ms, _ = median_ms(lambda: dst.copy_(src), device)
    return 2 * src.numel() * src.element_size() / (ms * 1e-3) / 1e9

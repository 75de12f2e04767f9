"""pytest-benchmark view of the suite: ``pytest benchmarks/`` (quick sizes, every provider but compile).

Each op x size x dtype is one benchmark group, so ``--benchmark-group-by=group`` compares providers side by
side. The runner (``python -m benchmarks``) adds torch.compile, GB/s and the copy-bandwidth fraction.
"""

import os

import pytest
import torch

from benchmarks.catalogue import all_cases

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    pytest.skip("benchmarks never run under TRITON_INTERPRET", allow_module_level=True)

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CASES = [(case, provider) for case in all_cases(DEVICE, quick=True, compile_=False) for provider in case.providers]


@pytest.mark.parametrize(
    "case,provider", CASES, ids=[f"{c.op}-{c.size}-{str(c.dtype)[6:]}-{p}".replace(" ", "_") for c, p in CASES]
)
def test_bench(benchmark, case, provider):
    benchmark.group = f"{case.op} {case.size} {case.dtype}"
    fn = case.providers[provider]
    if DEVICE.type == "cuda":

        def timed():
            fn()
            torch.cuda.synchronize()

        benchmark(timed)
    else:
        benchmark(fn)

"""What one launch-bound call asks of the host: the guard of the CPU model of the GPU's host cost.

On a GPU a small op costs what its Python and C calls cost before the launch (an H200 spent 38 us of fastgan's
Python around a 9 us launcher in ``fastgan.interpolate``, benchmarks/RESULTS.md). Times vary between machines;
the number of Python function calls, C calls and Python lines a call runs does not. With every kernel launched
directly through a stand-in (``benchmarks.stand_in``), each call of ``benchmarks.host_ops`` must stay within the
budget below, set from the counts after the launch plans and the drop-in's remembered checks went in (12 Python
calls, 12 C calls and 64 lines for ``interpolate``, 41, 34 and 135 before them; ``clip_weights_`` 33, 59 and 164,
38, 71 and 191 before): a change that puts per-call checks, imports, key loops or layout work back on the hot
path fails here.
"""

import pytest
import torch

import fastgan
from benchmarks.host_ops import op_pairs
from benchmarks.stand_in import python_calls, stand_in_launchers
from fastgan.backend import requested_backend

# Python function calls, C function calls, Python lines, launches: the counts measured when the budget was set,
# plus headroom for a helper split in two or a check moved, not for a check or a loop turn per argument.
BUDGET = {
    "interpolation": (16, 15, 80, 1),
    "clipping": (36, 64, 180, 1),
    "penalty": (80, 70, 360, 2),
    "loss": (78, 70, 370, 2),
}


@pytest.mark.parametrize("name", list(BUDGET))
def test_a_launch_bound_call_stays_within_its_host_budget(name):
    with stand_in_launchers() as compiled, fastgan.use_backend("triton"):
        ours, _ = op_pairs(torch.device("cpu"))[name]
        for _ in range(2):  # the plans made and this signature's checks remembered, then the launchers kept
            ours()
        before = compiled.launches
        counts = python_calls(ours)
        launches = (compiled.launches - before) // 2  # python_calls calls it twice
    *budget, expected_launches = BUDGET[name]
    assert launches == expected_launches
    assert all(count <= most for count, most in zip(counts, budget)), counts


def test_the_first_call_of_a_signature_is_checked():
    """The remembered path starts at the second call: a bad first call still raises, naming the argument."""
    with stand_in_launchers(), fastgan.use_backend("triton"):
        real = torch.randn(4, 3)
        with pytest.raises(ValueError, match="fake"):
            fastgan.interpolate(real, torch.randn(4, 2), torch.rand(4))
        with pytest.raises(ValueError, match="alpha"):
            fastgan.interpolate(real, real, torch.rand(5))
        fastgan.interpolate(real, real, torch.rand(4))
        with pytest.raises(TypeError, match="fake"):
            fastgan.interpolate(real, real.long(), torch.rand(4))


def test_the_backend_choice_on_a_gpu_reads_the_environment_in_one_call(monkeypatch):
    """On a GPU no ``use_backend`` is in force (which the budgets above use): every op reads ``$FASTGAN_BACKEND``,
    unset. ``os.environ.get`` raises and catches a KeyError inside for that (three Python calls); fastgan's read is
    one call of its own, and the answer the same."""
    monkeypatch.delenv("FASTGAN_BACKEND", raising=False)
    assert requested_backend() == "auto"
    calls, c_calls, _ = python_calls(requested_backend)
    assert calls <= 1 and c_calls <= 3, (calls, c_calls)

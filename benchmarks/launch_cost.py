"""``python -m benchmarks.launch_cost``: the host time of one fastgan launch against one ATen elementwise op on
the same tensors (CUDA).

Each op runs ``--calls`` times on tiny tensors without a sync between calls; the host's time per call is what
it costs to issue (the device finishes each kernel before the next is issued, so nothing waits on it). Rows:
``interpolation`` (one Triton launch behind ``fastgan.interpolate``, no autograd) against ``torch.lerp``;
``clipping`` of the reference critic's 4 tensors (one Triton launch for all of them) against
``torch._foreach_clamp_min_`` + ``_foreach_clamp_max_`` (two ATen launches). fastgan is timed twice: with its
direct launches of the compiled kernels (the default) and through Triton's own launch path.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

import fastgan
from fastgan.kernels.launch import set_direct_launches

from .cases import mlp_critic
from .report import launch_table


def host_us(fn, calls: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the host microseconds per call of ``fn`` issued ``calls`` times in a row."""
    for _ in range(50):
        fn()
    torch.cuda.synchronize()
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        per_call.append((time.perf_counter() - start) / calls * 1e6)
        torch.cuda.synchronize()
    return statistics.median(per_call)


def measure(calls: int) -> list[dict]:
    device = torch.device("cuda")
    real, fake = torch.randn(64, 2, device=device), torch.randn(64, 2, device=device)
    alpha = torch.rand(64, device=device)
    alpha_b = alpha[:, None]
    params = [p.detach() for p in mlp_critic().to(device).parameters()]

    def foreach_clip():
        torch._foreach_clamp_min_(params, -0.01)
        torch._foreach_clamp_max_(params, 0.01)

    pairs = {
        "interpolation": (lambda: fastgan.interpolate(real, fake, alpha), lambda: torch.lerp(fake, real, alpha_b)),
        "clipping": (lambda: fastgan.clip_weights_(params, 0.01), foreach_clip),
    }
    rows = []
    with torch.no_grad():
        for op, (ours, aten) in pairs.items():
            direct = set_direct_launches(False)
            triton_path_us = host_us(ours, calls)
            set_direct_launches(direct)
            fastgan_us, aten_us = host_us(ours, calls), host_us(aten, calls)
            rows.append(
                {
                    "op": op,
                    "fastgan_us": round(fastgan_us, 2),
                    "triton_path_us": round(triton_path_us, 2),
                    "aten_us": round(aten_us, 2),
                    "ratio": round(fastgan_us / aten_us, 2),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.launch_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("launch_cost needs a CUDA GPU", file=sys.stderr)
        return 2
    rows = measure(args.calls)
    print(launch_table({"rows": rows}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"card": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

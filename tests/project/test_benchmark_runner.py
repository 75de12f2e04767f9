"""The benchmark runner works end to end (on the interpolation cases, to stay quick) and refuses the interpreter;
the report keeps one part per card and gives the device work of whole steps; the launch host-cost probe and the
parity measurement run; `pytest benchmarks/` runs every case."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # benchmarks/ is a folder of the checkout, not an installed package


def _run(args, interpret):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_runner_writes_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run(["--quick", "--no-compile", "--only", "interpolation", "--json", str(out)], interpret=False)
    assert proc.returncode == 0, proc.stderr
    assert "| interpolation | 64x784 | float32 |" in proc.stdout
    report = json.loads(out.read_text())
    env = report["environment"]
    assert env["torch"] and env["card"] and env["copy_bandwidth_gbs"] > 0
    rows = report["results"]
    assert {r["provider"] for r in rows} == {"fastgan", "reference", "eager"}
    assert all(r["ms"] > 0 and r["gbs"] > 0 for r in rows)


def test_runner_refuses_the_interpreter():
    proc = _run(["--quick"], interpret=True)
    assert proc.returncode == 2 and "TRITON_INTERPRET" in proc.stderr


def _report(card, ms):
    env = {
        "card": card,
        "date": "2026-11-26T23:00:00+00:00",
        "torch": "t",
        "triton": "tr",
        "machine": "m",
        "copy_bandwidth_gbs": 1000.0,
    }
    return {
        "environment": env,
        "results": [
            {"op": "critic step (reference mlp)", "size": "64x784", "dtype": "float32", "provider": p, "ms": v}
            for p, v in ms.items()
        ],
    }


def test_report_rewrites_one_cards_part_and_keeps_the_others(tmp_path):
    from benchmarks import report

    results_md = tmp_path / "RESULTS.md"
    results_md.write_text("# Results\n\n## GPU\n\nnotes\n\n## CPU\n")
    for card, ms in [
        ("Card A", {"reference": 2.0, "fastgan graph": 0.5}),
        ("Card B", {"reference": 3.0, "fastgan": 1.0}),
        ("Card A", {"reference": 2.0, "fastgan graph": 0.25}),
    ]:
        run = _report(card, ms)
        section = report.gpu_section(run, report.results_name(run["environment"]), tests="1 passed")
        report.write_gpu_section(results_md, section, report.card_slug(run["environment"]))
    text = results_md.read_text()
    assert text.count("### Card A") == 1 and text.count("### Card B") == 1
    assert "| reference ms | fastgan graph ms | best" in text  # the measured providers' columns only
    assert "| 2.0000 | 0.2500 |" in text and "0.5000" not in text  # card A rewritten
    assert "| 3.0000 | 1.0000 |" in text and "| 8.00 |" in text and "| 3.00 |" in text
    assert text.index("## GPU") < text.index("### Card B") < text.index("### Card A") < text.index("notes")
    assert "| op | size |" not in text  # no op rows: no empty op table
    assert "Device work" not in text  # measured on CUDA only


def test_steps_table_gives_the_device_work_where_measured():
    from benchmarks import report

    run = _report("Card", {"reference": 2.0, "fastgan": 3.0, "fastgan graph": 0.25})
    run["results"][0].update(kernels=52, syncs=0)  # an earlier run's row: no runtime calls
    run["results"][2].update(kernels=41, launches=1, copies=2, waits=3, wait_us=12.5, syncs=1)
    table = report.steps_table(run["results"])
    assert "| critic step (reference mlp) | 64x784 | 52 / 0 | - | 41 / 1 / 2 / 3 (12.5 us) / 1 |" in table


def test_steps_table_counts_every_bf16_provider_as_bf16():
    from benchmarks import report

    run = _report(
        "Card",
        {
            "reference": 8.0,
            "fastgan graph": 4.0,
            "func compile": 5.0,
            "reference bf16": 4.0,
            "fastgan graph bf16": 2.0,
            "fastgan graph bf16 nchw": 1.0,
        },
    )
    table = report.steps_table(run["results"])
    # fp32: graph 4 ms against func compile's 5 (1.25x), not the nchw bf16 row's 1 ms; bf16: 4 / 1
    assert "| 8.0000 | 4.0000 | 5.0000 | 4.0000 | 2.0000 | 1.0000 | 8.00 | 1.25 | 4.00 |" in table


def test_launch_overhead_models_the_host_path_of_every_call(tmp_path):
    """The CPU model of the host path (its own process: it sets TRITON_INTERPRET and swaps the kernels) times
    each call of benchmarks.host_ops against the code it replaces, counts its launches and its Python and C calls,
    and sees the five launches of an eager WGAN-GP critic step: interpolation, penalty forward and backward, loss
    forward and backward."""
    out = tmp_path / "launch.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.launch_overhead", "--calls", "10", "--rounds", "1", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    launches = {name: row["launches"] for name, row in rows.items()}
    assert launches == {
        "interpolation": 1,
        "clipping": 1,
        "penalty": 2,
        "loss": 2,
        "gp step": 3,
        "critic iteration (wgan-gp)": 3,
        "critic iteration (wgan clip)": 1,
        "critic step (eager, wgan-gp)": 5,
    }
    assert all(row["fastgan_us"] > 0 and row["replaced_us"] > 0 for row in rows.values())
    assert all(row["python_calls"] > 0 and row["gpu_us_predicted"] > 0 for row in rows.values() if row["kind"] == "op")


def test_the_step_profile_splits_each_providers_device_time_by_kernel_and_kind(tmp_path):
    """``benchmarks.step_profile`` on a CPU (the reference MLP pair, bf16): every provider's row with its time, its
    operators' time ranked with shares, and the shares of each kind summing to one."""
    out = tmp_path / "profile.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.step_profile", "--device", "cpu", "--steps", "2", "--rounds", "1"]
        + ["--top", "4", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = {row["provider"]: row for row in report["rows"]}
    assert set(rows) == {"reference bf16", "fastgan bf16"} and report["card"] == "CPU"
    for row in rows.values():
        assert row["ms"] > 0 and row["device_ms"] > 0 and row["flops"] > 0 and len(row["top"]) == 4
        shares = [kernel["share"] for kernel in row["top"]]
        assert shares == sorted(shares, reverse=True) and sum(shares) <= 1
        assert abs(sum(row["categories"].values()) - 1) < 1e-3 and "matmul" in row["categories"]
    assert "| reference bf16 | off |" in proc.stdout


def test_kernels_are_told_apart_by_kind():
    from benchmarks.step_profile import category

    names = {
        "sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64_cudnn": "convolution",
        "sm90_xmma_dgrad_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc": "convolution",
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64": "matmul",
        "penalty_fwd_kernel": "fastgan triton",
        "interpolation_fwd_kernel": "fastgan triton",
        "triton_poi_fused_add_mul_0": "compiled triton",
        "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::NormTwoOps<float>>>": (
            "reduction"
        ),
        "void at::native::multi_tensor_apply_kernel<at::native::FusedAdamMathFunctor<float, 4>>": "optimizer",
        "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>": "elementwise",
        "Memcpy DtoD (Device -> Device)": "copy",
        "aten::convolution_backward": "convolution",
        "aten::addmm": "matmul",
        "aten::linalg_vector_norm": "reduction",
        "something else": "other",
    }
    assert {name: category(name) for name in names} == names


def test_parity_compares_a_mode_with_eager_and_float64():
    """Two compiled WGAN-GP steps on the reference's MLP end within 1e-4 of eager, and the float64 run is the
    yardstick of both (nonzero distances: fp32 is not float64)."""
    from benchmarks import parity

    (row,) = parity.measure(models=("reference mlp",), penalties=("gp",), steps=2)
    assert row["mode"] == "compile" and row["to_eager"] < 1e-4
    assert 0 < row["eager_to_float64"] < 1e-4 and 0 < row["to_float64"] < 1e-4
    assert parity.verdict(row) == "within 1e-4"


def test_pytest_benchmark_cases_run():
    """`pytest benchmarks/` (the README's command) collects every case before it runs any: each case must keep
    its own inputs (the step cases once shared the last model's batches). Timings off: the cases run once."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", "-q", "-p", "no:cacheprovider", "--benchmark-disable"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_flops_follow_torchs_formulas():
    """A linear layer's forward and backward: three products of 2 x B x in x out FLOPs; the DCGAN 64x64 WGAN-GP
    critic step at batch 64: 107 GFLOP, the cost of about 12 forward passes (the figure the GPU-speed issue
    quotes from ``torch.utils.flop_counter``'s formulas)."""
    import torch

    from benchmarks.cases import conv_critic
    from benchmarks.roofline import count_work
    from benchmarks.step_cases import reference_adam, reference_critic_step

    layer, x = torch.nn.Linear(30, 20), torch.randn(7, 30, requires_grad=True)
    flops, traffic = count_work(lambda: layer(x).sum().backward())
    assert flops == 3 * 2 * 7 * 30 * 20 and traffic > 4 * (x.numel() + layer.weight.numel())
    torch.manual_seed(0)
    critic = conv_critic()
    real, fake = torch.rand(64, 3, 64, 64), torch.rand(64, 3, 64, 64)
    step, _ = count_work(lambda: reference_critic_step(critic, reference_adam(critic), real, fake))
    with torch.no_grad():
        forward, _ = count_work(lambda: critic(real))
    assert abs(step - 107e9) < 0.005 * 107e9 and 11.5 < step / forward < 12.5


def test_step_rows_carry_flops_and_the_bf16_providers(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run(
        [
            "--quick",
            "--no-compile",
            "--only",
            "critic step (reference mlp)",
            "--only",
            "interpolation",
            "--json",
            str(out),
        ],
        interpret=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["environment"]["bf16_matmul_tflops"] > 0
    steps = [r for r in report["results"] if r["op"] == "critic step (reference mlp)"]
    assert {(r["provider"], r["dtype"]) for r in steps} == {
        ("reference", "float32"),
        ("fastgan", "float32"),
        ("reference bf16", "bfloat16"),
        ("fastgan bf16", "bfloat16"),
    }
    for r in steps:
        assert r["flops"] > 0 and r["arithmetic_intensity"] > 0
        assert abs(r["tflops"] - r["flops"] / (r["ms"] * 1e-3) / 1e12) < 1e-9 * r["tflops"]
        assert r["fraction_of_bf16_peak"] == r["tflops"] / report["environment"]["bf16_matmul_tflops"]
    from benchmarks.plots import draw_all
    from benchmarks.report import gpu_section

    pictures = draw_all(report, tmp_path / "card")
    assert sorted(p.name for p in pictures) == ["card-bandwidth.png", "card-roofline.png", "card-steps.png"]
    assert all(p.stat().st_size > 10_000 for p in pictures)
    section = gpu_section(report, "card.json", None, [p.name for p in pictures])
    assert "](results/card-roofline.png)" in section and "% of bf16 matmul" in section


def test_the_lazy_r1_benchmarks_seed_code_trains_as_the_lazy_step_does():
    """The reference-style lazy-R1 period the ResNet case times does what ``CriticStep(..., lazy_every=16)`` does in
    16 calls (same seeds): the comparison is of the same work."""
    import copy

    import torch
    from models import tiny_mlp_gan

    import fastgan
    from benchmarks.step_cases import LAZY_R1, reference_adam, seed_lazy_r1_steps

    critic, _ = tiny_mlp_gan("cpu")
    real, fake = torch.randn(8, 12), torch.randn(8, 12)
    plain, stepped = copy.deepcopy(critic), copy.deepcopy(critic)
    seed_lazy_r1_steps(plain, reference_adam(plain), real, fake)
    loss, penalty, weight, every = LAZY_R1
    step = fastgan.CriticStep(
        stepped,
        reference_adam(stepped),
        loss=loss,
        penalty=penalty,
        penalty_weight=weight,
        lazy_every=every,
        mode="eager",
    )
    for _ in range(every):
        step(real, fake)
    for p, q in zip(stepped.parameters(), plain.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)

"""The benchmark runner works end to end (on the interpolation cases, to stay quick) and refuses the interpreter."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(args, interpret):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_runner_writes_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run(["--quick", "--no-compile", "--only", "interpolation", "--json", str(out)], interpret=False)
    assert proc.returncode == 0, proc.stderr
    assert "| interpolation | 64x784 | float32 |" in proc.stdout
    report = json.loads(out.read_text())
    env = report["environment"]
    assert env["torch"] and env["card"] and env["copy_bandwidth_gbs"] > 0
    rows = report["results"]
    assert {r["provider"] for r in rows} == {"fastgan", "seed", "eager"}
    assert all(r["ms"] > 0 and r["gbs"] > 0 for r in rows)


def test_runner_refuses_the_interpreter():
    proc = _run(["--quick"], interpret=True)
    assert proc.returncode == 2 and "TRITON_INTERPRET" in proc.stderr

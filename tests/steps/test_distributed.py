"""Several processes (gloo on the CPU, spawned here with torchrun or by hand): the same model as one process,
and clear failures when a rank dies, hangs or was started with other settings."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from distributed_worker import user_loops
from helpers import write_mnist

from fastgan.train import TrainConfig, train

WORKER = Path(__file__).resolve().parents[1] / "distributed_worker.py"
# Seed 11 is not one any preset was tuned on. 20 steps of batch 256 split over 2 processes.
SETTINGS = dict(steps=20, batch_size=256, log_every=10, eval_samples=200, device="cpu", mode="eager", seed=11)
PRESETS = {
    "wgan": {},
    "wgan-gp": {},
    "wgan-lp": {},
    "lsgan": {},
    "hinge": {},
    "r1": {"lazy_every": 4},
    # A conditional GAN on MNIST's labels (written by the fixture), epochs rolling over every 2 steps.
    "conditional": {
        "loss": "wgan-gp",
        "data": "mnist",
        "conditional": True,
        "batch_size": 16,
        "hidden": 16,
        "n_critic": 2,
    },
}


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def _env(threads: int = 1) -> dict:
    # One thread a process, as torchrun sets it; the in-process reference runs alike.
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}


def _two_process_runs(out: Path, mode: str) -> tuple[Path, dict]:
    mnist = write_mnist(out / "mnist")
    runs = {name: {**SETTINGS, "loss": name, "mode": mode, **extra} for name, extra in PRESETS.items()}
    runs["conditional"]["data_root"] = str(mnist)
    (out / "runs.json").write_text(json.dumps(runs))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(WORKER),
            str(out / "runs.json"),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, runs


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    return _two_process_runs(tmp_path_factory.mktemp("two"), "eager")


@pytest.fixture(scope="module")
def two_process_compiled_runs(tmp_path_factory):
    return _two_process_runs(tmp_path_factory.mktemp("two-compiled"), "compile")


@pytest.mark.parametrize("loss", PRESETS)
def test_two_processes_train_the_model_one_process_trains(two_process_runs, tmp_path, loss):
    _check_against_one_process(*two_process_runs, tmp_path, loss)


@pytest.mark.slow
@pytest.mark.parametrize("loss", PRESETS)
def test_compiled_two_processes_train_the_model_one_process_trains(two_process_compiled_runs, tmp_path, loss):
    _check_against_one_process(*two_process_compiled_runs, tmp_path, loss)


def _check_against_one_process(out: Path, runs: dict, tmp_path: Path, loss: str) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(TrainConfig(**runs[loss]), tmp_path, quiet=True)
    finally:
        torch.set_num_threads(threads)
    one = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    two = torch.load(out / loss / "checkpoint.pt", weights_only=True)
    for part in ("generator", "critic", "ema"):
        for name, tensor in (one[part] or {}).items():  # image presets keep no EMA
            assert _relative(two[part][name], tensor) < 1e-4, (part, name)
    assert json.loads((out / loss / "ranks.json").read_text())["bitwise_equal"]
    summary = json.loads((out / loss / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["backend"] == "gloo"
    assert [json.loads(line)["step"] for line in (out / loss / "metrics.jsonl").read_text().splitlines()] == [10, 20]


def test_ddp_wrapped_critics_in_a_users_own_loops(two_process_runs):
    out, _ = two_process_runs
    two = torch.load(out / "user_loops.pt", weights_only=True)
    one = user_loops()
    for loop, params in one.items():
        for p, q in zip(params, two[loop]):
            assert _relative(q, p) < 1e-5, loop
    assert "static_graph=True" in (out / "static_graph.txt").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_ranks(tmp_path, per_rank_args, timeout_s="60"):
    """Two ``fastgan train`` processes joined by hand (no torchrun agent to stop the survivor for us)."""
    port = _free_port()
    procs = []
    for rank, args in enumerate(per_rank_args):
        env = {
            **_env(),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
        }
        cmd = [
            sys.executable,
            "-m",
            "fastgan.cli",
            "train",
            "--device",
            "cpu",
            "--mode",
            "eager",
            "--quiet",
            "--hidden",
            "16",
            "--eval-samples",
            "100",
            "--dist-timeout",
            timeout_s,
            "--out",
            str(tmp_path / "run"),
            *args,
        ]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def _wait_for_metrics(path: Path, procs, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "the run did not start"
        time.sleep(0.2)


@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_a_lost_rank_stops_the_other_with_a_clear_error(tmp_path, fault):
    procs = _start_ranks(tmp_path, [["--steps", "100000", "--log-every", "5"]] * 2, timeout_s="10")
    try:
        _wait_for_metrics(tmp_path / "run" / "metrics.jsonl", procs)
        os.kill(procs[1].pid, signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
        start = time.monotonic()
        _, err = procs[0].communicate(timeout=60)
        took = time.monotonic() - start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    assert procs[0].returncode == 1, err[-2000:]
    assert "rank 0 of 2" in err and "another process died, hung" in err, err[-2000:]
    assert took < (5 if fault == "killed" else 30)  # a dead peer is seen at once; a hung one after the timeout


def test_ranks_started_with_different_settings_are_refused(tmp_path):
    procs = _start_ranks(tmp_path, [["--steps", "5", "--seed", "1"], ["--steps", "5", "--seed", "2"]])
    errors = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        errors.append(err)
        assert p.returncode == 2
    for err in errors:
        assert "different settings" in err and "--seed (rank 0: 1, rank 1: 2)" in err, err[-2000:]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_global_batch_that_does_not_split_is_refused(tmp_path):
    procs = _start_ranks(tmp_path, [["--steps", "5", "--batch-size", "255"]] * 2)
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 2 and "255 does not split evenly over 2 processes" in err, err[-2000:]

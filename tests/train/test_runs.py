"""`fastgan train` as a run: where it writes (never over another run), bad options refused before anything is
written, SIGINT and SIGTERM stopping with a checkpoint, and resumed runs ending as uninterrupted ones."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastgan import cli

ROOT = Path(__file__).resolve().parents[2]
QUICK = [
    "--steps",
    "3",
    "--log-every",
    "1",
    "--hidden",
    "8",
    "--batch-size",
    "16",
    "--eval-samples",
    "100",
    "--device",
    "cpu",
    "--mode",
    "eager",
    "--quiet",
]


def _refused(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    return err[0]


def _folder(root, corrupt=False):
    from PIL import Image

    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (12, 12), (50 * i, 30, 7)).save(root / label / f"{i}.png")
    if corrupt:
        (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


@pytest.mark.parametrize(
    "args,message",
    [
        (["--lr", "inf"], "--lr must be a finite number > 0, got inf"),
        (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
        (["--lr", "0"], "--lr must be a finite number > 0"),
        (["--penalty-weight", "-1"], "--penalty-weight must be a finite number > 0, got -1.0"),
        (["--loss", "wgan", "--clip-value", "0"], "--clip-value must be a finite number > 0, got 0.0"),
        (["--loss", "wgan", "--clip-value", "-1"], "--clip-value must be a finite number > 0"),
        (["--seed", "100000000000000000000"], "--seed must be in [0, 2^32)"),
        (["--seed", "-1"], "--seed must be in [0, 2^32)"),
        (["--lsgan-abc", "0,1"], "--lsgan-abc: expected 3 comma-separated numbers"),
        (["--loss", "lsgan", "--lsgan-abc", "0,inf,1"], "--lsgan-abc must be finite"),
        (["--mode", "graph", "--device", "cpu"], "--mode graph captures CUDA graphs"),
        (["--loss", "lsgan", "--penalty-weight", "5"], "--penalty-weight does not apply with --loss lsgan"),
        (["--label-smoothing", "0.1"], "--label-smoothing does not apply with --loss wgan-gp"),
        (["--loss", "ns", "--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
        (["--betas", "1.5,0.9"], "--betas must be two numbers in [0, 1)"),
        (["--ema", "nan"], "--ema must be in [0, 1)"),
        (["--dist-timeout", "inf"], "--dist-timeout must be a finite number > 0"),
        (["--conditional"], "--conditional trains on the class labels of an image set"),
        (["--loss", "wgan", "--lazy-every", "4"], "--lazy-every does not apply with --loss wgan"),
        (["--resume", "--overwrite"], "give one of them"),
        (["--memory-format", "channels_last"], "--memory-format channels_last lays out images"),
        (["--out", ""], "fastgan train: error: argument --out: expected a path, got an empty string"),
        (["--no-such-option", "1"], "fastgan train: error: unrecognized arguments: --no-such-option 1"),
        (
            ["--data-root", "/tmp"],
            "--data-root applies to image data sets (mnist, fashion-mnist, folder), not --data ring",
        ),
        (["--image-size", "32"], "--image-size applies to image data sets"),
        (["--download"], "--download fetches mnist or fashion-mnist, not --data ring"),
        (
            ["--data", "fashion-mnist", "--image-size", "1", "--model", "mlp"],
            "--image-size 1 does not fit --model mlp: it takes 4 to 1024",
        ),
        (["--data", "fashion-mnist", "--image-size", "100000"], "--image-size 100000 does not fit --model mlp"),
        (["--data", "fashion-mnist", "--image-size", "-8"], "--image-size -8 does not fit --model mlp"),
        (
            ["--data", "fashion-mnist", "--image-size", "2", "--model", "resnet"],
            "--image-size 2 does not fit --model resnet: it takes 4 or 7 times a power of two, 8 to 1024",
        ),
        (
            ["--data", "fashion-mnist", "--image-size", "4", "--model", "dcgan"],
            "--image-size 4 does not fit --model dcgan",
        ),
        (
            ["--data", "fashion-mnist", "--image-size", "30", "--model", "infogan"],
            "--image-size 30 does not fit --model infogan: it takes a multiple of 4",
        ),
        (["--hidden", "1000000000"], "--hidden must be at most 16384, got 1000000000"),
        (["--batch-size", "1000000000"], "--batch-size must be at most 1048576"),
        (["--eval-samples", "1000000000"], "--eval-samples must be at most 1000000"),
        (["--data", "fashion-mnist", "--fid", "300000"], "--fid must be 0 (off) or 2 to 200000 images, got 300000"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    _refused(capsys, ["--out", str(out), *args], message)
    assert not out.exists()


@pytest.mark.parametrize(
    "model,size", [("mlp", 4), ("dcgan", 8), ("dcgan", 14), ("resnet", 8), ("infogan", 4), ("infogan", 12)]
)
def test_the_smallest_and_odd_image_sizes_each_model_takes_train(tmp_path, model, size):
    root = _folder(tmp_path / "images")
    args = [
        "train",
        "--data",
        "folder",
        "--data-root",
        str(root),
        "--model",
        model,
        "--image-size",
        str(size),
        "--out",
        str(tmp_path / "run"),
        *QUICK,
        "--batch-size",
        "4",
        "--steps",
        "1",
    ]
    assert cli.main(args) == 0


def test_sixteen_bit_images_keep_their_range(tmp_path):
    """A 16-bit grayscale PNG (PIL mode I;16, which convert("RGB") clips to white) is scaled to 8 bits."""
    import numpy as np
    from PIL import Image

    from fastgan.train.data import load_image_dataset

    for label in ("dark", "ramp"):
        (tmp_path / label).mkdir()
    ramp = (np.arange(16 * 16, dtype=np.float64).reshape(16, 16) * 257).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp" / "0.png")
    Image.fromarray(np.full((16, 16), 1000, dtype=np.uint16)).save(tmp_path / "dark" / "0.png")
    data = load_image_dataset("folder", tmp_path, 16)
    dark, ramp_image = (data[i][0] for i in range(2))
    assert torch.allclose(dark, torch.full_like(dark, round(1000 / 257) / 127.5 - 1), atol=1e-6)
    expected = torch.arange(256, dtype=torch.float32).reshape(16, 16) / 127.5 - 1
    assert torch.allclose(ramp_image, expected.expand(3, -1, -1), atol=1e-6)


def test_a_one_class_folder_and_a_file_as_data_root_say_what_is_expected(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "only").mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / "only" / f"{i}.png")
    _refused(
        capsys,
        [
            "--data",
            "folder",
            "--data-root",
            str(tmp_path),
            "--conditional",
            "--model",
            "dcgan",
            "--image-size",
            "8",
            "--out",
            str(tmp_path / "run"),
            *QUICK,
            "--batch-size",
            "4",
        ],
        "--conditional needs at least 2 classes: the folder data under --data-root",
    )
    (tmp_path / "file.png").write_bytes(b"x")
    _refused(
        capsys,
        ["--data", "folder", "--data-root", str(tmp_path / "file.png"), "--out", str(tmp_path / "run"), *QUICK],
        "is a file: give the folder that holds the folder data",
    )
    assert not (tmp_path / "run").exists()


def test_models_larger_than_the_memory_are_refused_before_they_are_built(tmp_path, capsys, monkeypatch):
    """On a machine of 64 KiB (patched): the ring's MLPs (8 wide here) fit, 64-wide ones do not."""
    from fastgan.train import building

    monkeypatch.setattr(building, "device_memory", lambda device: 64 * 2**10)
    assert cli.main(["train", "--out", str(tmp_path / "small"), *QUICK]) == 0
    line = _refused(
        capsys, ["--out", str(tmp_path / "big"), *QUICK, "--hidden", "64"], "--model mlp with --hidden 64, --depth"
    )
    assert "more than the 0.1 MiB of cpu" in line and not (tmp_path / "big").exists()


def test_a_corrupt_image_is_named_in_one_line(tmp_path, capsys):
    root = _folder(tmp_path / "images", corrupt=True)
    line = _refused(
        capsys,
        [
            "--data",
            "folder",
            "--data-root",
            str(root),
            "--model",
            "dcgan",
            "--image-size",
            "8",
            "--out",
            str(tmp_path / "run"),
            *QUICK,
            "--batch-size",
            "4",
        ],
        "cannot read the image",
    )
    assert "broken.png" in line and not (tmp_path / "run").exists()


def test_an_out_that_is_a_file_or_cannot_be_written_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    _refused(capsys, ["--out", str(tmp_path / "file"), *QUICK], "is a file, not a folder")
    assert (tmp_path / "file").read_text() == "mine"
    _refused(capsys, ["--out", "/proc/fastgan-run", *QUICK], "cannot write in /proc")


def test_a_new_run_never_replaces_another(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), *QUICK]) == 0
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    _refused(capsys, ["--out", str(out), *QUICK, "--seed", "1"], "holds another run")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files  # untouched, metrics.jsonl included
    (out / "notes.txt").write_text("kept")
    assert cli.main(["train", "--out", str(out), *QUICK, "--seed", "1", "--overwrite"]) == 0
    assert json.loads((out / "summary.json").read_text())["settings"]["seed"] == 1
    assert (out / "notes.txt").read_text() == "kept"


def test_without_out_each_run_takes_a_new_numbered_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quick = [a for a in QUICK if a != "--quiet"] + ["--quiet", "--no-lr-decay"]
    assert cli.main(["train", *quick]) == 0
    assert cli.main(["train", *quick]) == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["00000-wgan-gp-ring-s0", "00001-wgan-gp-ring-s0"]
    # --resume without --out continues the newest run of that name.
    assert cli.main(["train", *quick[:-4], "--steps", "5", "--quiet", "--no-lr-decay", "--resume"]) == 0
    assert json.loads((tmp_path / "runs" / runs[1] / "summary.json").read_text())["steps"] == 5
    assert json.loads((tmp_path / "runs" / runs[0] / "summary.json").read_text())["steps"] == 3


def test_runs_started_together_without_out_take_their_own_folders(tmp_path):
    """Two `fastgan train` processes started at once in the same place: two folders, each a whole run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "fastgan.cli", "train", *QUICK, "--no-lr-decay"]
    procs = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    runs = sorted((tmp_path / "runs").iterdir())
    assert [r.name for r in runs] == ["00000-wgan-gp-ring-s0", "00001-wgan-gp-ring-s0"]
    for run in runs:
        assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
        assert json.loads((run / "summary.json").read_text())["steps"] == 3


def test_a_number_taken_after_the_listing_moves_to_the_next(tmp_path, monkeypatch):
    """The race itself: another run makes the folder between this run's listing and its mkdir."""
    from fastgan.train import rundir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "00000-wgan-gp-ring-s0").mkdir(parents=True)
    monkeypatch.setattr(rundir, "_numbered", lambda root, name: [])  # a listing made before that folder existed
    assert rundir.new_run_dir(Path("runs"), "wgan-gp-ring-s0") == Path("runs/00001-wgan-gp-ring-s0")
    assert (tmp_path / "runs" / "00001-wgan-gp-ring-s0").is_dir()


def test_two_runs_into_one_out_at_once_the_second_is_refused(tmp_path):
    """Both pass the check for another run before either writes: the one that claims the folder first keeps it."""
    from fastgan.train import TrainConfig, Trainer
    from fastgan.train.rundir import RunDirError

    config = dict(steps=2, log_every=1, hidden=8, batch_size=16, eval_samples=100, device="cpu", mode="eager")
    first = Trainer(TrainConfig(**config), tmp_path / "run", quiet=True)
    second = Trainer(TrainConfig(**config, seed=1), tmp_path / "run", quiet=True)
    first.fit()
    files = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(RunDirError, match="taken by another run"):
        second.fit()
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == files


def test_a_refused_run_leaves_no_numbered_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _refused(capsys, [*QUICK, "--lr", "0"], "--lr must be a finite number > 0")
    assert not any((tmp_path / "runs").iterdir())


def test_threads_default_to_one_on_2d_data_and_follow_the_option(tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert cli.main(["train", "--out", str(tmp_path / "a"), *QUICK]) == 0
        assert torch.get_num_threads() == 1
        assert cli.main(["train", "--out", str(tmp_path / "b"), *QUICK, "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2
        _refused(capsys, ["--out", str(tmp_path / "c"), *QUICK, "--threads", "0"], "--threads must be >= 1, got 0")
    finally:
        torch.set_num_threads(before)


def test_a_resumed_runs_seconds_continue_its_predecessors(tmp_path):
    """summary.json's wall_seconds (evaluations included) and metrics.jsonl's (training only) count the whole run."""
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), *QUICK, "--no-lr-decay"]) == 0
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["wall_seconds"]
    first = json.loads((out / "summary.json").read_text())["wall_seconds"]
    assert 0 < saved <= first
    assert cli.main(["train", "--out", str(out), *QUICK, "--no-lr-decay", "--steps", "5", "--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert summary["wall_seconds"] > saved and summary["wall_seconds"] >= history[-1]["wall_seconds"]
    assert history[-1]["wall_seconds"] > history[2]["wall_seconds"]


def test_resume_refuses_a_steps_it_cannot_end_as_an_uninterrupted_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), *QUICK]) == 0  # the ring preset decays the rates over --steps
    _refused(capsys, ["--out", str(out), "--resume", "--steps", "6"], "--steps cannot change from 3")
    _refused(capsys, ["--out", str(out), "--resume", "--steps", "2"], "the checkpoint is at step 3")


def _parameters(out):
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    return torch.utils._pytree.tree_leaves(
        [state["generator"], state["critic"], state["ema"], state["opt_d"], state["opt_g"]]
    )


def _assert_same_run(a, b):
    for x, y in zip(_parameters(a), _parameters(b)):
        assert torch.equal(x, y) if torch.is_tensor(x) else x == y


def test_more_steps_without_rate_decay_end_as_the_longer_run(tmp_path):
    args = [*QUICK, "--no-lr-decay", "--checkpoint-every", "2"]
    assert cli.main(["train", "--out", str(tmp_path / "long"), *args, "--steps", "6"]) == 0
    assert cli.main(["train", "--out", str(tmp_path / "split"), *args, "--steps", "4"]) == 0
    assert cli.main(["train", "--out", str(tmp_path / "split"), "--resume", "--steps", "6", "--quiet"]) == 0
    _assert_same_run(tmp_path / "long", tmp_path / "split")


def _command(out, *extra):
    return [
        sys.executable,
        "-m",
        "fastgan.cli",
        "train",
        "--out",
        str(out),
        "--steps",
        "400",
        "--log-every",
        "5",
        "--checkpoint-every",
        "100000",
        "--hidden",
        "16",
        "--batch-size",
        "32",
        "--eval-samples",
        "100",
        "--device",
        "cpu",
        "--mode",
        "eager",
        "--quiet",
        *extra,
    ]


# SIGTERM's run (23 s) under -m slow: both signals take one handler.
@pytest.mark.parametrize(
    "signum,status", [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)]
)
def test_a_signal_stops_with_a_checkpoint_and_the_resumed_run_ends_as_the_uninterrupted_one(tmp_path, signum, status):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    straight = subprocess.run(
        _command(tmp_path / "straight"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert straight.returncode == 0, straight.stderr
    proc = subprocess.Popen(
        _command(tmp_path / "split"), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics = tmp_path / "split" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"interrupted by {signal.Signals(signum).name} after step" in lines[0], err
    stopped = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["step"]
    assert 10 <= stopped < 400 and f"after step {stopped};" in lines[0]
    resumed = subprocess.run(
        _command(tmp_path / "split", "--resume"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(tmp_path / "straight", tmp_path / "split")
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == list(range(5, 401, 5))  # every log line once

"""`fastgan study`: a tiny study's outputs and their format; the slow acceptance run of the WGAN-GP grid target."""

import json
import subprocess
import sys
import time

import pytest
from helpers import write_tiny_inception

from fastgan import cli
from fastgan.train.study import PACGAN_ROWS, run_dir


def test_a_tiny_study_writes_its_table_and_figures_and_resumes(tmp_path, capsys):
    args = [
        "study",
        "--presets",
        "wgan-gp",
        "lsgan",
        "--data",
        "ring",
        "--seeds",
        "3",
        "4",
        "--steps",
        "4",
        "--mode",
        "eager",
        "--jobs",
        "2",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "study.json").read_text())
    rows = {(r["loss"], r["data"]): r for r in results["rows"]}
    assert set(rows) == {("wgan-gp", "ring"), ("lsgan", "ring")}
    for (loss, data), row in rows.items():
        assert row["seeds"] == [3, 4] and row["total_modes"] == 8
        finals = [json.loads((run_dir(tmp_path, loss, data, s) / "summary.json").read_text())["final"] for s in (3, 4)]
        assert row["high_quality"]["mean"] == pytest.approx(sum(f["high_quality"] for f in finals) / 2)
        assert row["modes"]["min"] == min(f["modes"] for f in finals)
        assert row["all_modes"] == sum(f["modes"] == 8 for f in finals)
        assert row["steps_per_second"]["mean"] > 0
        for s in (3, 4):  # every log line has the wall-clock time the curves are drawn over
            lines = (run_dir(tmp_path, loss, data, s) / "metrics.jsonl").read_text().splitlines()
            assert all(json.loads(line)["wall_seconds"] > 0 for line in lines)
    table = (tmp_path / "study.md").read_text()
    assert table in printed
    name, modes, hq, kl = PACGAN_ROWS["ring"]
    assert f"| ring | {name} (published) | - | {modes} | {100 * hq:.1f}% | {kl:.2f} |" in table
    assert table.count("| ring | wgan-gp |") == 1 and table.count("| ring | lsgan |") == 1
    for picture in ("samples.png", "curves.png"):
        assert (tmp_path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Finished runs are not run again: a second call only rewrites the summary.
    stamp = (run_dir(tmp_path, "lsgan", "ring", 3) / "summary.json").stat().st_mtime_ns
    assert cli.main(args) == 0
    assert (run_dir(tmp_path, "lsgan", "ring", 3) / "summary.json").stat().st_mtime_ns == stamp


def test_an_image_study_writes_best_fids_beside_the_published_table(tmp_path, fashion_root, capsys, monkeypatch):
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    network = write_tiny_inception(tmp_path / "tiny.pt")
    out = tmp_path / "study"
    args = [
        "study",
        "--presets",
        "lsgan",
        "--data",
        "fashion-mnist",
        "--seeds",
        "0",
        "1",
        "--steps",
        "3",
        "--mode",
        "eager",
        "--fid",
        "24",
        "--fid-weights",
        str(network),
        "--log-every",
        "1",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
    ]
    # The runs read the tiny data set through --data-root, given as an extra option of every run.
    monkeypatch.setattr("fastgan.train.study._command", _with_data_root(fashion_root))
    assert cli.main(args) == 0
    results = json.loads((out / "study.json").read_text())
    rows = {r["loss"]: r for r in results["rows"]}
    assert set(rows) == {"lsgan"}
    for loss, row in rows.items():
        runs = [run_dir(out, loss, "fashion-mnist", s) for s in (0, 1)]
        summaries = [json.loads((run / "summary.json").read_text()) for run in runs]
        bests = [
            min(json.loads(line)["fid"] for line in (run / "metrics.jsonl").read_text().splitlines()) for run in runs
        ]
        assert row["best_fid"]["mean"] == pytest.approx(sum(bests) / 2)
        assert [x["best"]["fid"] for x in summaries] == bests
        assert row["fid_images"] == 24 and row["critic_updates"] == 3 and row["machine"] == ["cpu"]
    table = (out / "study.md").read_text()
    assert f"| fashion-mnist | lsgan | 2 | {rows['lsgan']['best_fid']['mean']:.1f} ± " in table
    assert "| LSGAN 30.7 ± 2.2 |" in table and "| Lucic et al. | DRAGAN | 27.7 ± 1.2 |" in table
    assert "| PA-GAN | NS GAN, no epoch cap | 15.8 ± 1.1 |" in table
    assert table in capsys.readouterr().out
    for picture in ("image-samples.png", "fid-curves.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _with_data_root(root):
    from fastgan.train import study

    original = study._command

    def command(loss, data, seed, directory, extra, image_extra):
        return [
            *original(loss, data, seed, directory, extra, image_extra),
            "--data-root",
            str(root),
            "--batch-size",
            "8",
        ]

    return command


def test_image_options_need_the_image_set(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["study", "--data", "ring", "--fid", "100", "--out", str(tmp_path)])
    assert info.value.code == 2 and "--fid applies to --data fashion-mnist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--steps", "0"], "--steps must be >= 1, got 0"),
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--seeds", "0", "-1"], "--seeds must be in [0, 2^32), got -1"),
        (["--data", "fashion-mnist", "--fid", "1"], "--fid must be 2 to 200000"),
    ],
)
def test_bad_study_options_are_one_line_and_run_nothing(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        cli.main(["study", *args, "--out", str(tmp_path / "study")])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "study").exists()


def test_a_failed_run_is_named(tmp_path, capsys):
    # Every run refuses compile+graph on a CPU: the study names the run and points to its log.
    assert (
        cli.main(
            [
                "study",
                "--presets",
                "wgan",
                "--data",
                "ring",
                "--seeds",
                "0",
                "--mode",
                "compile+graph",
                "--quiet",
                "--out",
                str(tmp_path),
            ]
        )
        == 1
    )
    assert "wgan-ring-s0" in capsys.readouterr().err
    log = (run_dir(tmp_path, "wgan", "ring", 0) / "train.log").read_text()
    assert "--mode compile+graph captures CUDA graphs" in log


@pytest.mark.slow
def test_wgan_gp_grid_target(tmp_path):
    """Bare `fastgan train --data grid` on a seed it was not tuned on: all 25 modes, >= 95% high quality,
    reverse KL <= 0.03, within 600 s on a 2-core CPU."""
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastgan.cli",
            "train",
            "--data",
            "grid",
            "--seed",
            "7",
            "--quiet",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    final = json.loads((tmp_path / "summary.json").read_text())["final"]
    assert final["modes"] == 25 and final["high_quality"] >= 0.95 and final["reverse_kl"] <= 0.03
    assert wall < 600

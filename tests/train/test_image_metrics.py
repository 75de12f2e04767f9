"""FID and KID and TensorBoard logging of image runs.

The Fréchet distance is checked on features whose sample means and covariances are exactly those of two
Gaussians with a closed-form distance; the whole ``--fid`` pipeline runs with a small stand-in feature network
(no Inception weights can be downloaded here), and without weights the command line says to pass
``--fid-weights``.
"""

import json
import math

import pytest
import torch
from torch import nn

from fastgan import cli
from fastgan.train import TrainConfig, Trainer
from fastgan.train.image_metrics import (
    ImageMetrics,
    extract_features,
    frechet_distance,
    statistics,
    to_uint8,
    to_uint8_rgb,
)


def _exact_gaussian(n, mean, rotation, variances, seed):
    """n samples whose mean is ``mean`` and whose unbiased covariance is exactly Q diag(variances) Q^T."""
    z = torch.randn(n, mean.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z -= z.mean(0)
    cov = z.T @ z / (n - 1)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(cov)).T  # whitened: sample covariance the identity
    return mean + (z * variances.sqrt()) @ rotation.T


class Features(nn.Module):
    """A stand-in feature network: its "images" are already feature vectors."""

    def forward(self, x):
        return x


def test_frechet_distance_of_two_gaussians_is_the_closed_form():
    torch.manual_seed(0)
    d = 5
    rotation = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64))[0]  # both covariances in one eigenbasis
    mean_a, mean_b = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    var_a = torch.tensor([1.0, 2.0, 0.5, 3.0, 0.2], dtype=torch.float64)
    var_b = torch.tensor([0.3, 2.0, 1.5, 1.0, 0.8], dtype=torch.float64)
    closed_form = float((mean_a - mean_b).square().sum() + (var_a.sqrt() - var_b.sqrt()).square().sum())
    a = _exact_gaussian(3000, mean_a, rotation, var_a, 1)
    b = _exact_gaussian(3000, mean_b, rotation, var_b, 2)
    assert math.isclose(frechet_distance(*statistics(a), *statistics(b)), closed_form, rel_tol=1e-9)
    metrics = ImageMetrics(Features(), a)  # "images" that are their own features
    assert math.isclose(metrics(b)["fid"], closed_form, rel_tol=1e-9)


class PixelStats(nn.Module):
    """A small stand-in feature network on uint8 images: per-channel means and spreads of 4x4 pooled pixels."""

    def forward(self, images):
        x = nn.functional.adaptive_avg_pool2d(images.float() / 255, 4)
        return torch.cat([x.flatten(1), x.std(dim=(2, 3))], dim=1)


def test_image_metrics_are_zero_for_the_real_images_and_grow_with_a_shift():
    torch.manual_seed(0)
    real = torch.rand(64, 1, 12, 12) * 2 - 1
    metrics = ImageMetrics(PixelStats(), extract_features(PixelStats(), to_uint8(real), torch.device("cpu")))
    same = metrics(real)
    shifted = metrics((real + 0.5).clamp(-1, 1))
    # KID is unbiased: on the same images (other random subsets) it is noise around 0.
    assert abs(same["fid"]) < 1e-6 and shifted["fid"] > 1e-2 and shifted["kid"] > 10 * abs(same["kid"])
    rng = torch.get_rng_state()
    metrics(real)
    assert torch.equal(torch.get_rng_state(), rng)  # KID's subsets leave the training generator alone


def test_images_become_uint8_rgb():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 2, 2)
    out = to_uint8_rgb(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 2, 2)
    assert out[0, :, 0, 0].tolist() == [0] * 3 and out[0, 0].flatten().tolist() == [0, 128, 255, 255]


TINY_IMAGES = dict(data="mnist", steps=4, log_every=2, batch_size=8, n_critic=1, device="cpu", mode="eager")


def test_fid_runs_log_fid_and_kid_at_every_log_step(tmp_path, mnist_root):
    config = TrainConfig(**TINY_IMAGES, data_root=str(mnist_root), fid=16)
    trainer = Trainer(config, tmp_path / "run", quiet=True, fid_features=PixelStats())
    summary = trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    for r in records:
        assert r["fid"] > 0 and math.isfinite(r["kid"]) and r["kid_std"] >= 0
    assert summary["final"]["fid"] == records[-1]["fid"]
    # The same generator and real images give the same numbers: evaluation is deterministic.
    assert trainer.evaluate() == {k: records[-1][k] for k in ("fid", "kid", "kid_std")}


def test_fid_does_not_change_what_is_trained(tmp_path, mnist_root):
    ends = []
    for fid in (0, 16):
        trainer = Trainer(
            TrainConfig(**TINY_IMAGES, data_root=str(mnist_root), fid=fid),
            tmp_path / f"fid{fid}",
            quiet=True,
            fid_features=PixelStats(),
        )
        trainer.fit()
        ends.append([p.detach().clone() for p in trainer.generator.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*ends))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--fid", "16"], "--fid-weights"),  # no network here: the weights cannot be downloaded
        (["--fid", "16", "--fid-weights", "/nonexistent.pth"], "--fid-weights /nonexistent.pth: no such file"),
        (["--fid", "1"], "--fid must be 0"),
        (["--fid-weights", "w.pth"], "--fid-weights needs --fid"),
        (["--fid", "100"], "--fid 100: the train images of mnist are 40"),
    ],
)
def test_fid_errors_are_one_line_before_training(tmp_path, mnist_root, capsys, monkeypatch, args, message):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached weights
    monkeypatch.setattr("fastgan.train.evaluation.ImageMetrics.__init__", _refuse_if_reached)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(
            [
                "train",
                "--data",
                "mnist",
                "--data-root",
                str(mnist_root),
                "--steps",
                "2",
                "--device",
                "cpu",
                "--batch-size",
                "8",
                "--out",
                str(tmp_path / "run"),
                *args,
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def _refuse_if_reached(*args, **kwargs):
    raise AssertionError("the metrics were built although the weights are missing")


def test_fid_on_2d_data_is_refused(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--fid", "10"])
    assert "--fid measures images" in capsys.readouterr().err


def test_tensorboard_gets_the_scalars_and_the_sample_grids(tmp_path, mnist_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(
        TrainConfig(**TINY_IMAGES, data_root=str(mnist_root), tensorboard=True, fid=16),
        tmp_path / "run",
        quiet=True,
        fid_features=PixelStats(),
    ).fit()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    for scalar in ("d_loss", "g_loss", "wasserstein", "penalty", "fid", "kid"):
        assert [e.step for e in events.Scalars(scalar)] == [2, 4], scalar
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert events.Scalars("d_loss")[-1].value == pytest.approx(records[-1]["d_loss"], rel=1e-6)
    assert {"samples", "samples.png", "curves.png"} <= set(tags["images"])
    assert [e.step for e in events.Images("samples")] == [2, 4]

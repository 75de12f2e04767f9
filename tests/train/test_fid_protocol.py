"""FID on the protocol: the FID network read from a TorchScript file, the real features' cache, the lowest-FID
checkpoint, and ``fastgan sample``, whose images scored by independent plain code give the FID the run reported.

The TorchScript network is a small stand-in with the real one's interface ((B, 3, 299, 299) in [-1, 1) ->
(B, F)), scripted and saved by the test; the real Inception-v3 file is 87 MB and is not fetched here.
"""

import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from helpers import write_tiny_inception
from torch import nn

from fastgan import cli
from fastgan.train import TrainConfig, Trainer
from fastgan.train.evaluation import EVAL_SEED
from fastgan.train.idx_images import load_fashion_mnist
from fastgan.train.image_metrics import TorchScriptInception, inception, kernel_inception_distance


@pytest.fixture
def network_file(tmp_path):
    return write_tiny_inception(tmp_path / "tiny_inception.pt")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGAN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def plain_features(pixels: np.ndarray, network_file) -> np.ndarray:
    """The protocol written out: uint8 (N, C, 28, 28), grayscale tiled to 3 channels, bilinear to 299, (x - 128) /
    128, the network; float64 features."""
    net = torch.jit.load(str(network_file))
    x = torch.from_numpy(np.repeat(pixels, 3 // pixels.shape[1], axis=1)).double()
    x = nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    with torch.no_grad():
        return net(((x - 128) / 128).float()).double().numpy()


def plain_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))


def test_a_torchscript_file_is_fed_as_the_protocol_says(network_file):
    network = inception(str(network_file))
    assert isinstance(network, TorchScriptInception)
    pixels = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    got = network(pixels.expand(-1, 3, -1, -1)).double().numpy()
    assert np.allclose(got, plain_features(pixels.numpy(), network_file), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("content", ["bytes", "state_dict", "zip"])
def test_other_files_are_refused_by_name(tmp_path, content):
    path = tmp_path / "weights.bin"
    if content == "bytes":
        path.write_bytes(b"\x00" * 100)
    elif content == "state_dict":
        torch.save({"conv.weight": torch.zeros(2)}, path)
    else:
        import zipfile

        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model/data.pkl", b"nothing")
    with pytest.raises(ValueError, match=f"--fid-weights {path}"):
        inception(str(path))


def _run(tmp_path, fashion_root, network_file, fid=24, steps=4):
    config = TrainConfig(
        protocol="lucic2018",
        loss="lsgan",
        data_root=str(fashion_root),
        steps=steps,
        log_every=1,
        fid=fid,
        fid_weights=str(network_file),
        batch_size=8,
        device="cpu",
        mode="eager",
    )
    return Trainer(config, tmp_path / "run", quiet=True)


def test_real_features_are_cached_by_data_split_n_and_network(tmp_path, fashion_root, network_file, cache):
    first = _run(tmp_path, fashion_root, network_file)
    files = list((cache / "fid-real").iterdir())
    assert len(files) == 1
    name = files[0].name
    from fastgan.train.image_metrics import file_sha1

    assert name.startswith("fashion-mnist-test-n24-28px-") and file_sha1(network_file) in name
    test = load_fashion_mnist(fashion_root, "test")
    assert np.allclose(
        first.log.image_metrics.real_features.numpy(),
        plain_features(test.images.numpy(), network_file),
        rtol=1e-5,
        atol=1e-6,
    )  # the whole test split
    # A second run reads the file: features changed there are what it uses.
    saved = torch.load(files[0], weights_only=True)
    torch.save({**saved, "features": saved["features"] * 2}, files[0])
    second = _run(tmp_path / "b", fashion_root, network_file)
    assert torch.allclose(
        second.log.image_metrics.real_features, 2 * first.log.image_metrics.real_features.float().double()
    )
    third = _run(tmp_path / "c", fashion_root, network_file, fid=10)
    assert len(list((cache / "fid-real").iterdir())) == 2  # another N, another entry
    assert np.allclose(
        third.log.image_metrics.real_features.numpy(),  # the first N test images: anyone can pick them
        plain_features(test.images[:10].numpy(), network_file),
        rtol=1e-5,
        atol=1e-6,
    )


def test_the_run_keeps_its_lowest_fid_and_sample_reproduces_it(tmp_path, fashion_root, network_file, capsys):
    trainer = _run(tmp_path, fashion_root, network_file)
    summary = trainer.fit()
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    best = min(history, key=lambda h: h["fid"])
    assert summary["best"] == {"fid": best["fid"], "step": best["step"]}
    saved = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert saved["step"] == best["step"] and saved["fid"] == best["fid"]

    out = tmp_path / "samples.npz"
    assert cli.main(["sample", str(tmp_path / "run"), "--n", "24", "--out", str(out)]) == 0
    assert f"step {best['step']}" in capsys.readouterr().out
    images = np.load(out)["images"]
    assert images.dtype == np.uint8 and images.shape == (24, 1, 28, 28)
    test = load_fashion_mnist(fashion_root, "test").images.numpy()
    independent = plain_fid(plain_features(test, network_file), plain_features(images, network_file))
    # float32 networks on both sides agree to ~5e-8 here; other noise moves this tiny network's FID by ~5e-5.
    assert math.isclose(independent, best["fid"], rel_tol=1e-6), (independent, best["fid"])
    for seed, same in ((EVAL_SEED, True), (EVAL_SEED + 1, False)):
        other = tmp_path / f"seed{seed}.npz"
        assert cli.main(["sample", str(tmp_path / "run"), "--n", "24", "--out", str(other), "--seed", str(seed)]) == 0
        assert np.array_equal(np.load(other)["images"], images) == same, seed

    last = tmp_path / "last"
    assert cli.main(["sample", str(tmp_path / "run"), "--n", "24", "--out", str(last), "--last"]) == 0
    pngs = sorted(last.iterdir())
    assert len(pngs) == 24 and pngs[0].name == "000000.png"
    from PIL import Image

    read = np.stack([np.asarray(Image.open(p))[None] for p in pngs])
    final = plain_fid(plain_features(test, network_file), plain_features(read, network_file))
    assert math.isclose(final, history[-1]["fid"], rel_tol=1e-6)


def test_resume_keeps_the_best_so_far(tmp_path, fashion_root, network_file):
    config = dict(
        protocol="lucic2018",
        loss="lsgan",
        data_root=str(fashion_root),
        log_every=1,
        fid=24,
        fid_weights=str(network_file),
        batch_size=8,
        device="cpu",
        mode="eager",
        checkpoint_every=1,
    )
    Trainer(TrainConfig(**config, steps=2), tmp_path / "run", quiet=True).fit()
    resumed = Trainer(TrainConfig(**config, steps=4), tmp_path / "run", quiet=True, resume=True)
    first_two = min(resumed.log.history, key=lambda h: h["fid"])
    assert resumed.log.best == {"fid": first_two["fid"], "step": first_two["step"]}
    summary = resumed.fit()
    assert summary["best"]["fid"] == min(h["fid"] for h in resumed.log.history)


def _sample_error(args, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["sample", *args])
    err = capsys.readouterr().err.strip().splitlines()
    return info.value.code, err


def test_sample_errors_are_one_line_and_write_nothing(tmp_path, fashion_root, network_file, capsys):
    code, err = _sample_error([str(tmp_path), "--n", "4", "--out", str(tmp_path / "x.npz")], capsys)
    assert code == 2 and len(err) == 1 and "holds no run" in err[0] and not (tmp_path / "x.npz").exists()
    _run(tmp_path, fashion_root, network_file, steps=1).fit()
    taken = tmp_path / "taken.npz"
    taken.write_bytes(b"keep")
    for args, message in (
        (["--out", str(taken)], "exists"),
        (["--out", str(tmp_path / "y.npz"), "--labels", "1"], "not conditional"),
    ):
        code, err = _sample_error([str(tmp_path / "run"), "--n", "4", *args], capsys)
        assert code == 2 and len(err) == 1 and message in err[0], err
    assert taken.read_bytes() == b"keep" and not (tmp_path / "y.npz").exists()
    code, err = _sample_error([str(tmp_path / "run"), "--n", "0", "--out", str(tmp_path / "z.npz")], capsys)
    assert code == 2 and "--n must be 1 to 200000, got 0" in err[0]


def test_conditional_samples_take_labels(tmp_path, fashion_root):
    config = TrainConfig(
        data="fashion-mnist",
        data_root=str(fashion_root),
        model="infogan",
        conditional=True,
        steps=1,
        batch_size=8,
        device="cpu",
        mode="eager",
        loss="ns",
    )
    Trainer(config, tmp_path / "run", quiet=True).fit()
    for labels in (["--labels", "3", "7"], []):
        out = tmp_path / f"s{len(labels)}.npz"
        assert cli.main(["sample", str(tmp_path / "run"), "--n", "4", "--out", str(out), "--last", *labels]) == 0
        assert np.load(out)["images"].shape == (4, 1, 28, 28)
    with pytest.raises(SystemExit):
        cli.main(["sample", str(tmp_path / "run"), "--n", "4", "--out", str(tmp_path / "bad.npz"), "--labels", "10"])


def test_fid_beyond_the_test_split_is_refused_before_training(tmp_path, fashion_root, network_file, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(
            [
                "train",
                "--protocol",
                "lucic2018",
                "--data-root",
                str(fashion_root),
                "--fid",
                "25",
                "--fid-weights",
                str(network_file),
                "--device",
                "cpu",
                "--batch-size",
                "8",
                "--out",
                str(tmp_path / "run"),
            ]
        )
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "--fid 25: the test images of fashion-mnist are 24" in err[0]
    assert not (tmp_path / "run").exists()


def test_kid_is_the_unbiased_mmd_of_the_cubic_kernel():
    from fastgan.train.image_metrics import KID_SEED

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(30, 5, generator=gen, dtype=torch.float64) + 0.3

    def kernel(a, b):
        return (a @ b.T / 5 + 1) ** 3

    draws, values = torch.Generator().manual_seed(KID_SEED), []
    for _ in range(3):  # subsets of 12 rows of each set, drawn as documented
        a, b = x[torch.randperm(30, generator=draws)[:12]], y[torch.randperm(30, generator=draws)[:12]]
        n = 12
        values.append(
            float(
                (kernel(a, a).sum() - kernel(a, a).trace()) / (n * (n - 1))
                + (kernel(b, b).sum() - kernel(b, b).trace()) / (n * (n - 1))
                - 2 * kernel(a, b).mean()
            )
        )
    kid, spread = kernel_inception_distance(x, y, subsets=3, subset_size=12)
    assert math.isclose(kid, float(np.mean(values)), rel_tol=1e-5)
    assert math.isclose(spread, float(np.std(values)), rel_tol=1e-4)


def test_kid_subsets_are_smaller_than_the_sets():
    """Sets no larger than subset_size: subsets of half the smaller set, so that the spread means something;
    under 4 rows there is no spread."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, generator=gen), torch.randn(40, 5, generator=gen) + 0.3
    kid, spread = kernel_inception_distance(x, y, subsets=20)
    assert spread > 0.01 * abs(kid)
    assert (kid, spread) == kernel_inception_distance(x, y, subsets=20, subset_size=20)
    kid, spread = kernel_inception_distance(x[:3], y[:3])
    assert math.isfinite(kid) and math.isnan(spread)


class SlowFeatures(nn.Module):
    """A stand-in feature network that takes a second a call."""

    def forward(self, images):
        import time

        time.sleep(1.0)
        return images.float().mean(dim=(2, 3))


def test_training_seconds_leave_the_evaluations_out(tmp_path, fashion_root):
    config = TrainConfig(
        protocol="lucic2018",
        loss="lsgan",
        data_root=str(fashion_root),
        steps=3,
        log_every=1,
        fid=8,
        batch_size=8,
        device="cpu",
        mode="eager",
    )
    trainer = Trainer(config, tmp_path / "run", quiet=True, fid_features=SlowFeatures())
    summary = trainer.fit()
    # Three evaluations of a second each, all left out of the training seconds (however long the steps took).
    assert summary["wall_seconds"] - trainer.log.history[-1]["wall_seconds"] >= 3.0

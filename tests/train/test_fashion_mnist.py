"""Fashion-MNIST from local IDX files, the InfoGAN-style pair and the lucic2018 protocol.

The files are tiny stand-ins written by the tests in both layouts users have (Debian's folder of .gz files,
torchvision's FashionMNIST/raw); the reader is checked against the arrays written, and every damaged or
missing file against its one-line error.
"""

import gzip
import math

import pytest
import torch
from helpers import write_fashion_mnist

from fastgan import cli
from fastgan.train import TrainConfig, Trainer
from fastgan.train.data import DataError, ImageStream
from fastgan.train.idx_images import FASHION_CLASSES, load_fashion_mnist, read_idx
from fastgan.train.models import InfoGANCritic, InfoGANGenerator


def _expected(root, split, layout):
    """The arrays write_fashion_mnist wrote, read back by hand (big-endian header, then bytes)."""
    folder = root if layout == "debian" else root / "FashionMNIST" / "raw"
    prefix = "train" if split == "train" else "t10k"
    raw = (gzip.decompress if layout == "debian" else bytes)(
        (folder / f"{prefix}-images-idx3-ubyte{'.gz' if layout == 'debian' else ''}").read_bytes()
    )
    n = int.from_bytes(raw[4:8], "big")
    return torch.tensor(list(raw[16:]), dtype=torch.uint8).reshape(n, 1, 28, 28)


@pytest.mark.parametrize("layout", ["debian", "torchvision"])
@pytest.mark.parametrize("split,count", [("train", 40), ("test", 24)])
def test_both_layouts_read_exactly_what_was_written(tmp_path, layout, split, count):
    root = write_fashion_mnist(tmp_path / "f", layout=layout)
    data = load_fashion_mnist(root, split)
    assert data.images.dtype == torch.uint8 and data.images.shape == (count, 1, 28, 28)
    assert torch.equal(data.images, _expected(root, split, layout))
    assert data.labels.tolist() == [i % 10 for i in range(count)] and data.classes == list(FASHION_CLASSES)
    image, label = data[3]
    assert label == 3 and image.dtype == torch.float32
    assert torch.equal(image, data.images[3].float() / 127.5 - 1)


def test_resizing_keeps_uint8_and_the_size_asked_for(fashion_root):
    data = load_fashion_mnist(fashion_root, "train", image_size=32)
    assert data.images.shape == (40, 1, 32, 32) and data.images.dtype == torch.uint8


def _damage(path, how):
    raw = gzip.decompress(path.read_bytes())
    if how == "truncated":
        raw = raw[:-5]
    elif how == "magic":
        raw = b"\0\0\x09" + raw[3:]
    path.write_bytes(b"not gzip at all" if how == "gzip" else gzip.compress(raw))


@pytest.mark.parametrize(
    "how,message", [("truncated", "is truncated or corrupt"), ("magic", "is not an IDX file"), ("gzip", "cannot read")]
)
def test_damaged_files_are_named(fashion_root, how, message):
    path = fashion_root / "train-images-idx3-ubyte.gz"
    _damage(path, how)
    with pytest.raises(DataError, match=message) as info:
        load_fashion_mnist(fashion_root, "train")
    assert str(path) in str(info.value)


def test_idx_dimensions_are_checked(fashion_root):
    with pytest.raises(DataError, match="with 1 dimensions"):
        read_idx(fashion_root / "train-images-idx3-ubyte.gz", 1)


def _train(args, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--data", "fashion-mnist", "--steps", "1", "--device", "cpu", "--quiet", *args])
    err = capsys.readouterr().err.strip().splitlines()
    return info.value.code, err


def test_missing_or_damaged_data_is_one_line_and_nothing_is_written(tmp_path, fashion_root, capsys):
    code, err = _train(["--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and len(err) == 1 and "--data-root" in err[0] and "--download" in err[0]
    _damage(fashion_root / "t10k-labels-idx1-ubyte.gz", "truncated")  # the test split is read for --fid only
    (fashion_root / "train-labels-idx1-ubyte.gz").write_bytes(b"")
    code, err = _train(["--data-root", str(fashion_root), "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and len(err) == 1 and "train-labels-idx1-ubyte.gz" in err[0]
    assert not (tmp_path / "run").exists()


def test_batches_are_the_uint8_images_normalised_and_resume_exactly(fashion_root):
    data = load_fashion_mnist(fashion_root, "train")
    stream = ImageStream(data, batch_size=8, seed=3, device=torch.device("cpu"))
    assert stream.uint8 and stream.images.dtype == torch.uint8
    batches = [stream.next_batch() for _ in range(3)]
    state = stream.state_dict()
    after = [stream.next_batch() for _ in range(7)]  # crosses an epoch
    order = torch.randperm(40, generator=torch.Generator().manual_seed(3 * 100003))
    first = order[:8]
    assert torch.equal(batches[0][0], data.images[first].float() / 127.5 - 1)
    assert torch.equal(batches[0][1], data.labels[first])
    again = ImageStream(data, batch_size=8, seed=3, device=torch.device("cpu"))
    again.load_state_dict(state)
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(after, [again.next_batch() for _ in range(7)])
    )


def test_the_protocol_sets_the_paper_and_options_given_win():
    s = TrainConfig(protocol="lucic2018", loss="wgan-gp").resolved()
    assert (s.data, s.model, s.latent_dim, s.noise, s.batch_size, s.fid) == (
        "fashion-mnist",
        "infogan",
        64,
        "uniform",
        64,
        10000,
    )
    assert s.steps * s.n_critic == 15625 and s.log_every == 781  # 15,625 critic updates, FID every 3,905
    ns = TrainConfig(protocol="lucic2018", loss="ns").resolved()
    assert (ns.steps, ns.log_every) == (15625, 3906)
    odd = TrainConfig(protocol="lucic2018", loss="wgan-gp", n_critic=3, fid=500, batch_size=32).resolved()
    assert (odd.steps, odd.log_every, odd.fid, odd.batch_size) == (math.ceil(15625 / 3), 1302, 500, 32)
    with pytest.raises(ValueError, match="--protocol"):
        TrainConfig(protocol="lucic").resolved()


def test_infogan_pair_shapes_and_initialisation():
    torch.manual_seed(0)
    g, d = InfoGANGenerator(64, 1, 28), InfoGANCritic(1, 28)
    x = g(torch.rand(16, 64) * 2 - 1)
    assert x.shape == (16, 1, 28, 28) and x.abs().max() <= 1
    assert d(x).shape == (16, 1) and d.features(x).shape == (16, 1024) and d.head.out_features == 1
    big = next(m for m in d.modules() if isinstance(m, torch.nn.Linear) and m.in_features == 128 * 7 * 7)
    weight = big.weight.detach()
    assert abs(float(weight.std()) - 0.02) < 5e-4 and abs(float(weight.mean())) < 5e-4  # N(0, 0.02)
    assert float(big.bias.abs().max()) == 0
    norms = {n: [type(m).__name__ for m in InfoGANCritic(1, 28, norm=n).modules()] for n in ("batch", "layer", "none")}
    assert norms["batch"].count("BatchNorm2d") == 1 and norms["batch"].count("BatchNorm1d") == 1
    assert "GroupNorm" in norms["layer"] and "LayerNorm" in norms["layer"]
    assert not {"BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm"} & set(norms["none"])
    with pytest.raises(ValueError, match="divisible by 4"):
        InfoGANGenerator(64, 1, 30)


@pytest.mark.parametrize("loss,norm", [("wgan-gp", "GroupNorm"), ("lsgan", "BatchNorm2d")])
def test_protocol_runs_train_on_the_data_with_uniform_noise(tmp_path, fashion_root, loss, norm):
    config = TrainConfig(
        protocol="lucic2018",
        loss=loss,
        data_root=str(fashion_root),
        steps=2,
        log_every=1,
        fid=0,
        batch_size=8,
        device="cpu",
        mode="eager",
    )
    trainer = Trainer(config, tmp_path / "run", quiet=True)
    assert norm in {type(m).__name__ for m in trainer.critic.modules()}  # per-sample norms under a penalty
    z = trainer.noise(4096)
    assert float(z.min()) >= -1 and float(z.max()) <= 1 and abs(float(z.mean())) < 0.05
    assert abs(float(z.var()) - 1 / 3) < 0.01  # uniform on [-1, 1], not N(0, 1)
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    summary = trainer.fit()
    assert summary["steps"] == 2 and all(math.isfinite(h["d_loss"]) for h in trainer.log.history)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.generator.parameters()))


def test_conditional_runs_use_the_ten_classes(tmp_path, fashion_root):
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
    trainer = Trainer(config, tmp_path / "run", quiet=True)
    assert trainer.classes == 10
    trainer.fit()


def test_download_without_network_says_so_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    # An unreachable proxy stands for a machine without network access.
    env = {**os.environ, "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastgan.cli",
            "train",
            "--data",
            "fashion-mnist",
            "--download",
            "--data-root",
            str(tmp_path / "fm"),
            "--steps",
            "1",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "could not download Fashion-MNIST" in err[0], proc.stderr
    assert "dataset-fashion-mnist" in err[0] and not (tmp_path / "run").exists()

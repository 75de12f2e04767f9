"""Class-conditional GANs and the reference's other stabilizers in `fastgan train`: the projection critic and the
class-conditional generator, ImageFolder's and MNIST's labels, grids with a class per row, resume; the ResNet
pair, spectral normalization, the SNGAN preset and label smoothing."""

import json

import pytest
import torch

from fastgan.train import TrainConfig, Trainer, train
from fastgan.train.models import (
    ConditionalGenerator,
    DCGANCritic,
    MLPCritic,
    ProjectionCritic,
    ResNetCritic,
    ResNetGenerator,
    spectral_normalized,
)

TINY = dict(steps=2, log_every=1, batch_size=8, n_critic=1, device="cpu", mode="eager")


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    for k, label in enumerate(("a", "b", "c")):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (20, 20), (80 * k, 10 * i, 40)).save(tmp_path / "imgs" / label / f"{i}.png")
    return tmp_path / "imgs"


def test_projection_critic_is_its_formula():
    torch.manual_seed(0)
    base = MLPCritic(12, 16, 2)
    critic = ProjectionCritic(base, 5)
    x, y = torch.randn(6, 12), torch.tensor([0, 4, 2, 2, 1, 3])
    h = base.model[:-1](x)
    expected = base.model[-1](h) + (critic.embed.weight[y] * h).sum(1, keepdim=True)
    torch.testing.assert_close(critic(x, y), expected, rtol=0, atol=0)
    assert torch.equal(base.features(x), h)
    with pytest.raises(ValueError, match="classes must be an int >= 2"):
        ProjectionCritic(base, 1)


def test_spectral_normalized_critic_has_unit_spectral_norm_layers():
    torch.manual_seed(0)
    critic = spectral_normalized(ProjectionCritic(DCGANCritic(3, 16, width=8, norm="none"), 4))
    layers = [m for m in critic.modules() if hasattr(m, "parametrizations")]
    assert len(layers) == 4  # two convolutions, the head and the class embedding
    for _ in range(50):  # power iterations converge in training mode
        critic(torch.randn(4, 3, 16, 16), torch.arange(4))
    critic.eval()
    for m in layers:
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        assert float(torch.linalg.matrix_norm(w, ord=2)) == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("size", [28, 32])
def test_resnet_pair_shapes(size):
    generator, critic = ResNetGenerator(10, 3, size, 8), ResNetCritic(3, size, 8)
    images = generator(torch.randn(4, 10))
    assert images.shape == (4, 3, size, size) and images.abs().max() <= 1
    assert critic(images).shape == (4, 1) and critic.features(images).shape == (4, 8)


def test_conditional_generator_embeds_the_class():
    torch.manual_seed(0)
    generator = ConditionalGenerator(torch.nn.Linear(6 + 3, 5), 4, 3)
    z = torch.randn(2, 6)
    a, b = generator(z, torch.tensor([0, 0])), generator(z, torch.tensor([0, 1]))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])


@pytest.mark.parametrize("model", ["mlp", "dcgan", "resnet"])
def test_conditional_mnist_trains_with_a_class_per_row(tmp_path, mnist_root, model):
    config = TrainConfig(data="mnist", data_root=str(mnist_root), conditional=True, model=model, hidden=8, **TINY)
    trainer = Trainer(config, tmp_path / "run", quiet=True)
    assert trainer.classes == 10 and isinstance(trainer.critic, ProjectionCritic)
    seen = []
    step = trainer.critic_update.__call__

    def recording(real, fake, *, labels=None, fake_labels=None):
        seen.append((real, labels, fake_labels))
        return step(real, fake, labels=labels, fake_labels=fake_labels)

    trainer.critic_update = recording
    trainer.fit()
    all_images = trainer.data.images.flatten(1)
    for real, labels, fake_labels in seen:
        assert labels.dtype == torch.int64 and labels.shape == (8,) and fake_labels.shape == (8,)
        # The tiny MNIST's labels are index % 10: the real batch's labels are its images' own.
        index = (real.flatten(1)[:, None] == all_images[None]).all(dim=2).int().argmax(dim=1)
        assert torch.equal(labels, index % 10)
    images = torch.load(tmp_path / "run" / "samples.pt")
    assert images.shape == (80, 1, 28, 28)
    rows = trainer.sample_labels(80).reshape(10, 8)
    assert torch.equal(rows, torch.arange(10)[:, None].expand(10, 8))


def test_conditional_folder_labels_are_the_subfolders(tmp_path, folder):
    from fastgan.train.data import ImageStream, load_image_dataset

    dataset = load_image_dataset("folder", folder, 16)
    stream = ImageStream(dataset, 6, seed=0, device=torch.device("cpu"), workers=0)
    assert stream.classes == 3
    images, labels = stream.next_batch()
    for image, label in zip(images, labels):
        # Each class's images have red 80 * k (scaled to [-1, 1]): the label is the image's folder.
        assert round(float((image[0, 0, 0] + 1) / 2 * 255) / 80) == int(label)
    config = TrainConfig(data="folder", data_root=str(folder), conditional=True, model="dcgan", image_size=16, **TINY)
    summary = train(config, tmp_path / "run", quiet=True)
    assert summary["settings"]["conditional"] and torch.load(tmp_path / "run" / "samples.pt").shape[0] == 24
    assert stream.class_names == sorted(p.name for p in folder.iterdir())


def test_image_grids_are_legible_and_a_conditional_one_names_its_rows(tmp_path):
    """16x16 samples, 8 a row: each cell enlarged to 64 px at least; class names take a margin of their own
    beside the rows (their text is matplotlib's; that it is drawn shows as the margin's dark pixels)."""
    import numpy as np
    from PIL import Image

    from fastgan.train.plots import save_image_grid

    images = torch.rand(16, 3, 16, 16) * 2 - 1
    save_image_grid(images, tmp_path / "plain.png")
    save_image_grid(images, tmp_path / "named.png", ["cat", "dog"])
    plain = np.asarray(Image.open(tmp_path / "plain.png").convert("L"))
    named = np.asarray(Image.open(tmp_path / "named.png").convert("L"))
    assert plain.shape[0] >= 2 * 64 and plain.shape[1] >= 8 * 64
    assert named.shape[0] >= 2 * 64 and named.shape[1] >= plain.shape[1] + 100
    margin = named[:, : named.shape[1] - plain.shape[1] - 20]
    assert (margin < 128).any() and (margin > 200).mean() > 0.8  # text on white


@pytest.mark.parametrize("loss,panels", [("lsgan", 3), ("wgan-gp", 5)])
def test_curves_show_only_panels_with_data_three_to_a_row(tmp_path, loss, panels):
    from PIL import Image

    config = TrainConfig(
        loss=loss, steps=2, log_every=1, hidden=8, batch_size=16, eval_samples=100, device="cpu", mode="eager"
    )
    train(config, tmp_path / "run", quiet=True)
    width, height = Image.open(tmp_path / "run" / "curves.png").size
    rows, columns = -(-panels // 3), min(3, panels)
    assert (width, height) == (round(4.2 * columns * 110), round(3.2 * rows * 110))


def test_a_conditional_run_resumes_bitwise(tmp_path, mnist_root):
    config = dict(
        data="mnist",
        data_root=str(mnist_root),
        conditional=True,
        hidden=8,
        steps=4,
        log_every=2,
        checkpoint_every=2,
        batch_size=8,
        device="cpu",
        mode="eager",
    )
    train(TrainConfig(**config), tmp_path / "straight", quiet=True)
    train(TrainConfig(**{**config, "steps": 2}), tmp_path / "split", quiet=True)
    train(TrainConfig(**config), tmp_path / "split", resume=True, quiet=True)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    for key in ("generator", "critic", "ema", "opt_d"):
        for x, y in zip(torch.utils._pytree.tree_leaves(a[key]), torch.utils._pytree.tree_leaves(b[key])):
            assert torch.equal(x, y) if torch.is_tensor(x) else x == y


def test_sngan_preset_is_hinge_with_a_spectral_norm_critic(tmp_path, mnist_root):
    s = TrainConfig(loss="sngan", data="mnist", data_root="x").resolved()
    assert (s.spectral_norm, s.n_critic, s.betas) == (True, 5, (0.0, 0.9))
    trainer = Trainer(
        TrainConfig(loss="sngan", data="mnist", data_root=str(mnist_root), model="resnet", hidden=8, **TINY),
        tmp_path / "run",
        quiet=True,
    )
    convolutions = [m for m in trainer.critic.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert convolutions and all(hasattr(m, "parametrizations") for m in convolutions)
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and "penalty" not in records[-1]


def test_spectral_norm_is_refused_on_a_users_critic(tmp_path):
    with pytest.raises(ValueError, match="spectral_norm normalises the provided critics"):
        Trainer(TrainConfig(spectral_norm=True, **TINY), tmp_path, critic=torch.nn.Linear(2, 1))


def test_label_smoothing_reaches_the_critic_loss(tmp_path):
    from fastgan.kernels.loss_terms import LOGISTIC

    trainer = Trainer(TrainConfig(loss="ns", label_smoothing=0.1, hidden=8, **TINY), tmp_path, quiet=True)
    real_term = trainer.critic_update.terms[0]
    assert real_term.kind == LOGISTIC and real_term.param == pytest.approx(0.9)
    trainer.fit()


def test_a_compiled_conditional_run_trains_like_eager(tmp_path, mnist_root):
    import warnings

    # The hinge loss: the conditional penalty steps compile in tests/steps/test_zoo.py.
    config = dict(
        data="mnist",
        data_root=str(mnist_root),
        conditional=True,
        loss="hinge",
        hidden=8,
        steps=3,
        log_every=1,
        batch_size=8,
        device="cpu",
    )
    eager = Trainer(TrainConfig(mode="eager", **config), tmp_path / "eager", quiet=True)
    eager.fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        compiled = Trainer(TrainConfig(mode="compile", **config), tmp_path / "compiled", quiet=True)
        compiled.fit()
    assert compiled.critic_update.mode == compiled.generator_update.mode == "compile"
    for p, q in zip(compiled.critic.parameters(), eager.critic.parameters()):
        assert (p - q).norm() <= 1e-3 * q.norm()

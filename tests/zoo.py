"""Critics and generators fastgan was not designed around, and the steps they train with written plainly.

The modules are small versions of what GAN users train: spectral norm through both torch APIs on linear and
conv layers, an SNGAN/BigGAN-style residual discriminator, a projection discriminator (Miyato & Koyama, 2018),
a StyleGAN-style minibatch-stddev critic, dropout, BatchNorm, a frozen feature network under a trained head, a
critic whose own buffer moves at every call, critics and a generator whose forward reassigns buffers or counts in
Python attributes (LeCam's and ADA's running statistics are written so), and generators with BatchNorm or a
class embedding.

The reference steps follow the reference's code shape (zero_grad, scores, loss, penalty with ``create_graph=True``,
backward, step, clip) with the oracles of :mod:`fastgan.reference`, and their own table of where each penalty
is taken: nothing here reads fastgan's penalty catalogue, so a wrong entry there fails the comparison.
"""

import torch
from torch import nn
from torch.nn.utils import parametrizations
from torch.nn.utils import spectral_norm as old_spectral_norm

from fastgan import reference

IMAGE = (3, 8, 8)
VECTOR = (12,)
CLASSES = 4
LATENT = 6


def sn(layer, api="parametrizations"):
    """Spectral norm through ``torch.nn.utils.parametrizations`` (the current API) or the older hook API."""
    return parametrizations.spectral_norm(layer) if api == "parametrizations" else old_spectral_norm(layer)


class SNMLPCritic(nn.Module):
    def __init__(self, api="parametrizations"):
        super().__init__()
        self.net = nn.Sequential(
            sn(nn.Linear(12, 24), api),
            nn.LeakyReLU(0.2),
            sn(nn.Linear(24, 16), api),
            nn.LeakyReLU(0.2),
            sn(nn.Linear(16, 1), api),
        )

    def forward(self, x):
        return self.net(x)


class SNConvCritic(nn.Module):
    def __init__(self, api="old"):
        super().__init__()
        self.net = nn.Sequential(
            sn(nn.Conv2d(3, 8, 3, 2, 1), api),
            nn.LeakyReLU(0.1),
            sn(nn.Conv2d(8, 16, 3, 2, 1), api),
            nn.LeakyReLU(0.1),
            nn.Flatten(),
            sn(nn.Linear(16 * 2 * 2, 1), api),
        )

    def forward(self, x):
        return self.net(x)


class SNResBlock(nn.Module):
    """SNGAN's discriminator block: ReLU-conv-ReLU-conv with an average-pooled 1x1 shortcut."""

    def __init__(self, c_in, c_out, first=False):
        super().__init__()
        self.first = first
        self.conv1, self.conv2 = sn(nn.Conv2d(c_in, c_out, 3, 1, 1)), sn(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.shortcut = sn(nn.Conv2d(c_in, c_out, 1))

    def forward(self, x):
        h = x if self.first else torch.relu(x)
        h = nn.functional.avg_pool2d(self.conv2(torch.relu(self.conv1(h))), 2)
        return h + self.shortcut(nn.functional.avg_pool2d(x, 2))


class SNResNetCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(SNResBlock(3, 8, first=True), SNResBlock(8, 8))
        self.head = sn(nn.Linear(8, 1))

    def forward(self, x):
        return self.head(torch.relu(self.blocks(x)).sum(dim=(2, 3)))


class ProjectionCritic(nn.Module):
    """``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``: the projection discriminator, spectrally normalised."""

    def __init__(self):
        super().__init__()
        self.phi = nn.Sequential(sn(nn.Linear(12, 16)), nn.LeakyReLU(0.2), sn(nn.Linear(16, 16)), nn.LeakyReLU(0.2))
        self.psi = sn(nn.Linear(16, 1))
        self.embed = sn(nn.Embedding(CLASSES, 16))

    def forward(self, x, y):
        h = self.phi(x)
        return self.psi(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)


class ProjectionConvCritic(nn.Module):
    """The projection discriminator on images: conv features pooled, a class embedding projected on them."""

    def __init__(self):
        super().__init__()
        self.phi = nn.Sequential(sn(nn.Conv2d(3, 8, 3, padding=1)), nn.LeakyReLU(0.2), sn(nn.Conv2d(8, 8, 3, 2, 1)))
        self.psi = sn(nn.Linear(8, 1))
        self.embed = sn(nn.Embedding(CLASSES, 8))

    def forward(self, x, y):
        h = torch.nn.functional.leaky_relu(self.phi(x), 0.2).sum(dim=(2, 3))
        return self.psi(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)


class MinibatchStdCritic(nn.Module):
    """StyleGAN's minibatch standard deviation: each sample also sees the spread of its group of 4."""

    def __init__(self, group=4):
        super().__init__()
        self.group = group
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)
        self.out = nn.Linear((8 + 1) * 4 * 4, 1)

    def forward(self, x):
        h = nn.functional.leaky_relu(self.conv(x), 0.2)
        b, c, hh, ww = h.shape
        g = h.reshape(self.group, b // self.group, c, hh, ww)
        std = (g.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (b // group,)
        std = std.repeat(self.group).reshape(b, 1, 1, 1).expand(b, 1, hh, ww)
        return self.out(torch.cat([h, std], dim=1).flatten(1))


class DropoutCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(12, 32),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.3),
            nn.Linear(32, 16),
            nn.ELU(),
            nn.Dropout(0.2),
            nn.Linear(16, 1),
        )

    def forward(self, x):
        return self.net(x)


class BatchNormCritic(nn.Module):
    def __init__(self):
        super().__init__()
        # No bias before the BatchNorm, which removes it: its gradient is zero in exact arithmetic, so its path
        # under Adam (a step of the learning rate per sign of rounding noise) is no property of the code tested.
        self.net = nn.Sequential(nn.Linear(12, 24, bias=False), nn.BatchNorm1d(24), nn.LeakyReLU(0.2), nn.Linear(24, 1))

    def forward(self, x):
        return self.net(x)


class FrozenFeatureCritic(nn.Module):
    """A frozen feature network (as a pretrained one in Projected GAN, or FreezeD's first layers) under a
    trained head; the frozen part holds BatchNorm statistics in eval mode."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.SiLU(), nn.Linear(16, 16))
        self.features.requires_grad_(False).eval()
        self.head = nn.Sequential(nn.Mish(), nn.Linear(16, 8), nn.Softplus(), nn.Linear(8, 1))

    def train(self, mode=True):
        super().train(mode)
        self.features.eval()  # frozen: its statistics stay as they are
        return self

    def forward(self, x):
        return self.head(self.features(x))


class RunningCenterCritic(nn.Module):
    """A critic with a buffer of its own that every training call moves: a running mean of its inputs,
    subtracted before scoring (in-place buffer updates inside forward, as user code writes them)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("center", torch.zeros(12))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.net = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.center.mul_(0.9).add_(x.mean(dim=0), alpha=0.1)
                self.calls += 1
        return self.net(x - self.center)


class LabelBufferCritic(nn.Module):
    """The conditional-critic wrapper users write without a labels argument: labels in a buffer, replaced by
    assignment before each call."""

    def __init__(self, batch=8):
        super().__init__()
        self.inner = ProjectionCritic()
        self.register_buffer("labels", torch.zeros(batch, dtype=torch.long))

    def forward(self, x):
        return self.inner(x, self.labels)


class ReassignedBufferCritic(nn.Module):
    """A running mean of the scores and a call counter, both buffers reassigned in forward (``self.mean = ...``:
    new tensors, not in-place updates), the mean subtracted from the scores."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.net = nn.Sequential(nn.Linear(12, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def forward(self, x):
        h = self.net(x)
        if self.training:
            self.mean = 0.9 * self.mean + 0.1 * h.detach().mean()
            self.count = self.count + 1
        return h - self.mean


class CountingCritic(nn.Module):
    """A Python attribute counted in forward and the batch sizes seen kept in a list (plain Python state)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 16), nn.ELU(), nn.Linear(16, 1))
        self.calls = 0
        self.seen = []

    def forward(self, x):
        self.calls += 1
        self.seen.append(x.shape[0])
        return self.net(x)


CRITICS = {
    "sn mlp (parametrizations)": (SNMLPCritic, VECTOR),
    "sn mlp (old api)": (lambda: SNMLPCritic("old"), VECTOR),
    "sn conv (old api)": (SNConvCritic, IMAGE),
    "sn conv (parametrizations)": (lambda: SNConvCritic("parametrizations"), IMAGE),
    "sn resnet": (SNResNetCritic, IMAGE),
    "projection (conditional)": (ProjectionCritic, VECTOR),
    "minibatch stddev": (MinibatchStdCritic, IMAGE),
    "projection conv (conditional)": (ProjectionConvCritic, IMAGE),
    "dropout": (DropoutCritic, VECTOR),
    "batchnorm": (BatchNormCritic, VECTOR),
    "frozen features": (FrozenFeatureCritic, VECTOR),
    "running buffer": (RunningCenterCritic, VECTOR),
    "reassigned buffers": (ReassignedBufferCritic, VECTOR),
    "python counter": (CountingCritic, VECTOR),
}
# Critics whose forward changes what compiled code and graph replays cannot follow: those modes run them eager.
STATEFUL = {"reassigned buffers", "python counter"}
CONDITIONAL = {"projection (conditional)", "projection conv (conditional)"}
IMAGE_CRITICS = [name for name, (_, shape) in CRITICS.items() if shape == IMAGE]


class BatchNormGenerator(nn.Module):
    def __init__(self, out=12):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(LATENT, 24), nn.BatchNorm1d(24), nn.ReLU(), nn.Linear(24, out))

    def forward(self, z):
        return self.net(z)


class ImageGenerator(nn.Module):
    """Noise to 3 x 8 x 8 images through BatchNorm and a transposed convolution."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(LATENT, 4 * 4 * 8), nn.BatchNorm1d(4 * 4 * 8), nn.ReLU())
        self.up = nn.ConvTranspose2d(8, 3, 4, 2, 1)

    def forward(self, z):
        return torch.tanh(self.up(self.net(z).view(-1, 8, 4, 4)))


class ConditionalGenerator(nn.Module):
    """A class embedding concatenated to the noise."""

    def __init__(self, out=12):
        super().__init__()
        self.embed = nn.Embedding(CLASSES, 4)
        self.net = nn.Sequential(nn.Linear(LATENT + 4, 24), nn.BatchNorm1d(24), nn.GELU(), nn.Linear(24, out))

    def forward(self, z, y):
        return self.net(torch.cat([z, self.embed(y)], dim=1))


class ReassignedBufferGenerator(nn.Module):
    """A generator keeping a running mean of its outputs in a buffer reassigned in forward, added back scaled."""

    def __init__(self, out=12):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(LATENT, 24), nn.Tanh(), nn.Linear(24, out))
        self.register_buffer("mean", torch.zeros(out))

    def forward(self, z):
        x = self.net(z)
        if self.training:
            self.mean = 0.5 * self.mean + 0.5 * x.detach().mean(dim=0)
        return x + 0.1 * self.mean


# ----- the reference steps -----

REFERENCE_LOSSES = {
    "wgan": (reference.wgan_critic_loss, reference.wgan_generator_loss),
    "lsgan": (reference.lsgan_discriminator_loss, reference.lsgan_generator_loss),
    "ns": (reference.ns_discriminator_loss, reference.ns_generator_loss),
    "hinge": (reference.hinge_discriminator_loss, reference.hinge_generator_loss),
    "rpgan": (reference.rpgan_discriminator_loss, reference.rpgan_generator_loss),
    "ragan": (reference.ragan_discriminator_loss, reference.ragan_generator_loss),
}
RELATIVISTIC = ("rpgan", "ragan")  # their generator losses take (real scores, fake scores)
# Where each penalty is taken and its centre, from the papers (WGAN-GP, WGAN-LP, zero-centred GP, R1, R2, DRAGAN).
PENALTY_POINTS = {
    "gp": "interpolates",
    "lp": "interpolates",
    "zero-centred": "interpolates",
    "r1": "real",
    "r2": "fake",
    "dragan": "dragan",
    "r1+r2": "real+fake",
    "r1-approx": "real",
    "r2-approx": "fake",
}
# The approximate penalties' noise scale in these tests: large enough that a wrong perturbation moves the result
# by far more than fp32 rounding does (their default, 0.01, makes the penalty 1e-4 of the squared gradient norm).
SIGMA = 0.3


def _call(critic, x, y):
    return critic(x) if y is None else critic(x, y)


class ReferenceAugment:
    """DiffAugment as a reference loop writes it around its critic: ten uniforms a sample drawn per batch, the last
    three turned into flags with probability ``p``; with a ``target``, ADA's rule on the mean sign of the augmented
    reals' scores every ``interval`` updates (p in fp32, as a device tensor holds it)."""

    def __init__(self, policy, probability=1.0, target=None, interval=4, speed=500_000):
        self.policy, self.p, self.target = policy, torch.tensor(probability), target
        self.interval, self.speed, self.signs, self.seen = interval, speed, torch.zeros(()), 0

    def params(self, batch):
        u = torch.rand(batch, 10)
        u[:, 7:] = (u[:, 7:] < self.p).float()
        return u

    def __call__(self, x, params):
        return x if params is None else reference.diff_augment(x, params, self.policy)

    def observe(self, real_out, batch):
        if self.target is None:
            return
        self.signs = self.signs + torch.sign(real_out.detach().float()).mean()
        self.seen += 1
        if self.seen == self.interval:
            step = batch * self.interval / self.speed
            self.p = (self.p + torch.sign(self.signs / self.seen - self.target) * step).clamp(0.0, 1.0)
            self.signs, self.seen = torch.zeros(()), 0


class ReferenceLeCam:
    """LeCam as its authors write it: moving averages of the mean real and fake scores (here from 0), updated with
    the batch, then ``mean(relu(D(x) - a_F)^2) + mean(relu(a_R - D(G(z)))^2)``."""

    def __init__(self, weight, decay=0.99):
        self.weight, self.decay = weight, decay
        self.ema_real, self.ema_fake = torch.zeros(()), torch.zeros(())

    def __call__(self, real_out, fake_out):
        self.ema_real = self.decay * self.ema_real + (1 - self.decay) * real_out.detach().mean()
        self.ema_fake = self.decay * self.ema_fake + (1 - self.decay) * fake_out.detach().mean()
        return torch.mean(torch.relu(real_out - self.ema_fake) ** 2) + torch.mean(
            torch.relu(self.ema_real - fake_out) ** 2
        )


def reference_penalty(name, critic, real, fake, labels, fake_labels, alpha, noise, seen=None):
    """The penalty ``name`` in the reference's style, with the labels of the samples its points come from;
    ``seen``: (augment, real params, fake params) puts the augmentation of the points' batch before the critic."""
    at = PENALTY_POINTS[name]
    y = fake_labels if at == "fake" else labels
    augment, real_params, fake_params = seen or (lambda x, params: x, None, None)
    params = fake_params if at == "fake" else real_params
    D = lambda x: _call(critic, augment(x, params), y)  # noqa: E731 - the reference's one-argument critic
    if at == "real+fake":  # R3GAN's R1 + R2, each with its samples' labels
        r1, norms_real = reference.squared_gradient_norm(D, real)
        D_fake = lambda x: _call(critic, augment(x, fake_params), fake_labels)  # noqa: E731
        r2, norms_fake = reference.squared_gradient_norm(D_fake, fake)
        return r1 + r2, torch.cat([norms_real, norms_fake])
    if name.endswith("-approx"):
        return reference.approximate_penalty(D, real if at == "real" else fake, noise, SIGMA), None
    if at == "interpolates":
        center, one_sided = (0.0, False) if name == "zero-centred" else (1.0, name == "lp")
        return reference.gradient_penalty(D, real, fake, alpha, center, one_sided)
    if at in ("real", "fake"):
        return reference.squared_gradient_norm(D, real if at == "real" else fake)
    return reference.dragan_penalty(D, real, alpha, noise)


def reference_critic_step(
    critic,
    opt,
    real,
    fake,
    loss,
    penalty,
    weight,
    labels=None,
    fake_labels=None,
    clip=None,
    augment=None,
    lecam=None,
    bcr=None,
    zcr=0.0,
    fake_moved=None,
):
    """One critic step written plainly, drawing (augmentation parameters for real, then fake, bCR's for real, then
    fake, then) alpha and noise as the steps do (fp32, before any critic call); ``lecam``: a
    :class:`ReferenceLeCam`; ``bcr``: ((lambda_real, lambda_fake), policy); ``zcr``: lambda_dis, with
    ``fake_moved``. Returns its statistics as floats."""
    real_params = augment.params(real.shape[0]) if augment else None
    fake_params = augment.params(fake.shape[0]) if augment else None
    bcr_params = [torch.rand(x.shape[0], 10) for x in (real, fake)] if bcr and loss else None
    if bcr_params:
        for u in bcr_params:
            u[:, 7:] = 1.0
    needs_alpha = penalty in ("gp", "lp", "zero-centred", "dragan")
    alpha = torch.rand(real.shape[0]).to(real.dtype) if needs_alpha else None
    noise = torch.rand(real.shape).to(real.dtype) if penalty == "dragan" else None
    if penalty and penalty.endswith("-approx"):
        noise = torch.randn(real.shape).to(real.dtype)
    seen = (augment, real_params, fake_params) if augment else None
    opt.zero_grad()
    total, stats = 0.0, {}
    if loss:
        if augment:
            real_out, fake_out = (
                _call(critic, augment(real, real_params), labels),
                _call(critic, augment(fake, fake_params), fake_labels),
            )
        else:
            real_out, fake_out = _call(critic, real, labels), _call(critic, fake, fake_labels)
        total = REFERENCE_LOSSES[loss][0](real_out, fake_out)
        stats["wasserstein"] = float(real_out.detach().mean() - fake_out.detach().mean())
        if augment and augment.target is not None:
            stats["real_sign"] = float(torch.sign(real_out.detach()).mean())
        if lecam:
            value = lecam(real_out.view(-1), fake_out.view(-1))
            total = total + lecam.weight * value
            stats.update(
                lecam=float(value.detach()), lecam_ema_real=float(lecam.ema_real), lecam_ema_fake=float(lecam.ema_fake)
            )
        if bcr:
            (real_weight, fake_weight), policy = bcr
            real_again = _call(critic, reference.diff_augment(real, bcr_params[0], policy), labels)
            fake_again = _call(critic, reference.diff_augment(fake, bcr_params[1], policy), fake_labels)
            value = (
                real_weight * ((real_out.view(-1) - real_again.view(-1)) ** 2).mean()
                + fake_weight * ((fake_out.view(-1) - fake_again.view(-1)) ** 2).mean()
            )
            total = total + value
            stats["consistency"] = float(value.detach())
        if zcr:
            moved_out = _call(critic, fake_moved, fake_labels)
            value = ((fake_out.view(-1) - moved_out.view(-1)) ** 2).mean()
            total = total + zcr * value
            stats["latent_consistency"] = float(value.detach())
    if penalty:
        value, norms = reference_penalty(penalty, critic, real, fake, labels, fake_labels, alpha, noise, seen)
        total = total + weight * value
        stats["penalty"] = float(value.detach())
        if norms is not None:  # an input gradient's norms (the approximate penalties take none)
            stats.update(grad_norm_mean=float(norms.detach().mean()), grad_norm_max=float(norms.detach().max()))
    stats["loss"] = float(total.detach())
    total.backward()
    opt.step()
    if clip:
        reference.clip_weights_([p for p in critic.parameters() if p.requires_grad], clip)
    if loss and augment:
        augment.observe(real_out, real.shape[0])
    return stats


def reference_generator_step(generator, critic, opt, noise, loss, labels=None, real=None, augment=None, zcr=None):
    """One generator step written plainly: the critic's parameters get no gradient (``backward(inputs=...)``); a
    relativistic loss scores ``real`` after the generated batch, R3GAN's order; with ``augment`` both are
    augmented first (parameters drawn for the generated batch, then the real one, before the generator runs);
    ``zcr``: (lambda_gen, sigma), the generator run again on latents moved by sigma * N(0, I), drawn after."""
    fake_params = augment.params(noise.shape[0]) if augment else None
    real_params = augment.params(real.shape[0]) if augment and real is not None else None
    dz = torch.randn(noise.shape).to(noise.dtype) * zcr[1] if zcr else None
    seen = augment or (lambda x, params: x)
    opt.zero_grad()
    fake = generator(noise) if labels is None else generator(noise, labels)
    moved = None
    if zcr:
        moved = generator(noise + dz) if labels is None else generator(noise + dz, labels)
    fake_out = _call(critic, seen(fake, fake_params), labels)
    if loss in RELATIVISTIC:
        value = REFERENCE_LOSSES[loss][1](_call(critic, seen(real, real_params), labels).detach(), fake_out)
    else:
        value = REFERENCE_LOSSES[loss][1](fake_out)
    stats = {}
    if zcr:
        latent = ((fake - moved) ** 2).mean()
        value = value - zcr[0] * latent
        stats["latent_consistency"] = float(latent.detach())
    value.backward(inputs=[p for p in generator.parameters() if p.requires_grad])
    opt.step()
    return {"loss": float(value.detach()), **stats}

"""Run by ``torchrun`` from tests/steps/test_distributed.py: every training run of a JSON file in one process group
(process start-up is paid once), then a user's own loops with a DDP-wrapped critic. Also the ranks that
tests/gpu/test_gpu.py spawns on one GPU (:func:`shared_device_rank`).

    torchrun --standalone --nproc_per_node 2 tests/distributed_worker.py RUNS.json OUT_DIR

Rank 0 writes, for each run, the run's outputs and ``ranks.json`` (whether every rank ended with bitwise the
same models), and ``user_loops.pt`` (the critics the user loops trained) and ``static_graph.txt`` (the error a
static-graph DDP critic gets).
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from models import tiny_mlp_gan
from torch import nn

import fastgan
from fastgan.distributed import Shard, all_reduce_gradients, init_from_environment
from fastgan.train import TrainConfig, Trainer

GLOBAL_BATCH = 8


def user_critic() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1))


def user_loops(wrap=lambda m: m, shard: Shard = Shard()) -> dict[str, list[torch.Tensor]]:
    """Three loops a user writes, on ``shard``'s rows of fixed global batches: the reference's WGAN-GP step with
    ``fastgan.gradient_penalty`` on a (DDP-)wrapped critic; lazy R1 by hand, its penalty-only updates on the
    inner module followed by ``all_reduce_gradients``; and a ``CriticStep`` with lazy R1 given the wrapped
    critic. Returns each loop's final critic parameters."""
    data = torch.Generator().manual_seed(5)
    batches = [
        (torch.randn(GLOBAL_BATCH, 5, generator=data), torch.randn(GLOBAL_BATCH, 5, generator=data)) for _ in range(4)
    ]
    critic = user_critic()
    model = wrap(critic)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    torch.manual_seed(7)
    for real, fake in batches:
        real, fake = shard.rows(real), shard.rows(fake)
        alpha = shard.rows(torch.rand(GLOBAL_BATCH))
        opt.zero_grad()
        gp = fastgan.gradient_penalty(model, real, fake, alpha=alpha)
        loss = model(fake).mean() - model(real).mean() + 10.0 * gp
        loss.backward()
        opt.step()
    results = {"reference loop": [p.detach().clone() for p in critic.parameters()]}
    critic = user_critic()
    model = wrap(critic)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for i, (real, fake) in enumerate(batches):
        real, fake = shard.rows(real), shard.rows(fake)
        opt.zero_grad()
        fastgan.ns_discriminator_loss(model(real), model(fake)).backward()
        opt.step()
        if i % 2 == 0:  # the lazy penalty-only update, outside DDP
            opt.zero_grad()
            (2.0 * fastgan.r1_penalty(critic, real)).backward()
            if shard.world_size > 1:
                all_reduce_gradients(critic.parameters())
            opt.step()
    results["lazy r1 by hand"] = [p.detach().clone() for p in critic.parameters()]
    critic = user_critic()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    step = fastgan.CriticStep(
        wrap(critic), opt, loss="ns", penalty="r1", penalty_weight=1.0, lazy_every=2, mode="eager"
    )
    for real, fake in batches:
        step(shard.rows(real), shard.rows(fake))
    results["critic step"] = [p.detach().clone() for p in critic.parameters()]
    return results


def gan_steps(
    mode: str, device: torch.device, shard: Shard = Shard(), group=None, steps: int = 5
) -> list[torch.Tensor]:
    """WGAN-GP critic steps and generator steps with EMA of a small MLP GAN in ``mode`` on ``device``, each on
    ``shard``'s rows of fixed global batches of 64, the gradients averaged over ``group``. Returns the critic's,
    the generator's and the EMA's parameters at the end (on the CPU)."""
    critic, generator = tiny_mlp_gan(device)
    critic_step = fastgan.CriticStep(
        critic,
        torch.optim.Adam(critic.parameters(), lr=1e-3),
        loss="wgan",
        penalty="gp",
        penalty_weight=10.0,
        mode=mode,
        process_group=group,
    )
    generator_step = fastgan.GeneratorStep(
        generator,
        critic,
        torch.optim.Adam(generator.parameters(), lr=1e-3),
        loss="wgan",
        ema=0.9,
        mode=mode,
        process_group=group,
    )
    data = torch.Generator(device=device).manual_seed(1)
    for _ in range(steps):
        real = shard.rows(torch.randn(64, 12, device=device, generator=data))
        z = shard.rows(torch.randn(64, 4, device=device, generator=data))
        critic_step(real, generator(z).detach())
        generator_step(z)
    assert critic_step.mode == mode and generator_step.mode == mode  # no fallback
    return [p.detach().cpu() for m in (critic, generator, generator_step.ema) for p in m.parameters()]


def shared_device_rank(rank: int, world: int, init_file: str, mode: str, device: str, out: str) -> None:
    """One of ``world`` processes (``torch.multiprocessing.spawn``) that join a gloo group and run
    :func:`gan_steps` on the same device; rank 0 saves every rank's parameters to ``out``."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        mine = gan_steps(mode, torch.device(device), Shard(rank, world), dist.group.WORLD)
        every = [None] * world
        dist.all_gather_object(every, mine)
        if rank == 0:
            torch.save(every, out)
    finally:
        dist.destroy_process_group()


def _flat(trainer: Trainer) -> torch.Tensor:
    modules = [trainer.generator, trainer.critic] + ([trainer.ema] if trainer.ema is not None else [])
    return torch.cat([p.detach().reshape(-1) for m in modules for p in m.parameters()])


def main(runs_file: str, out: str) -> None:
    init_from_environment("cpu")
    rank, world = dist.get_rank(), dist.get_world_size()
    out = Path(out)
    try:
        for name, settings in json.loads(Path(runs_file).read_text()).items():
            trainer = Trainer(TrainConfig(**settings), out / name, quiet=True)
            trainer.fit()
            mine = _flat(trainer)
            every = [torch.empty_like(mine) for _ in range(world)]
            dist.all_gather(every, mine)
            if rank == 0:
                (out / name / "ranks.json").write_text(
                    json.dumps({"bitwise_equal": all(torch.equal(every[0], other) for other in every[1:])})
                )
        ddp = user_loops(lambda m: nn.parallel.DistributedDataParallel(m), Shard.of(dist.group.WORLD))
        try:
            static = nn.parallel.DistributedDataParallel(user_critic(), static_graph=True)
            fastgan.gradient_penalty(static, torch.randn(4, 5), torch.randn(4, 5))
            refused = "not refused"
        except ValueError as exc:
            refused = str(exc)
        if rank == 0:
            torch.save(ddp, out / "user_loops.pt")
            (out / "static_graph.txt").write_text(refused)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(*sys.argv[1:])

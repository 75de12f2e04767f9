"""Several processes, one model: what the step objects and ``fastgan train`` need under ``torch.distributed``.

- :func:`all_reduce_gradients`: the mean gradient over the ranks in one flat all-reduce per (device, dtype)
  (StyleGAN3's choice over DDP). It runs after any backward, a double backward, a penalty-only step or a
  ``torch.func`` gradient, where DDP's hooks either do not fire or, with ``static_graph=True``, silently skip
  the reduction.
- :class:`Shard`: which rows of the global batch a rank holds. Random numbers are drawn for the whole global
  batch on every rank (from generators in the same state everywhere) and each rank keeps its rows, so step t
  uses the same data, noise and interpolation weights whatever the number of processes.
- :func:`same_settings`, :func:`reduce_stats`, :func:`any_rank`, :func:`unwrap`, :func:`refuse_static_graph`;
  every collective
  here raises :class:`CollectiveError` when another rank is gone.

Every rank's batch must have the same size: the mean over ranks of per-rank means is then the global mean.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

DEFAULT_TIMEOUT_S = 60.0


class CollectiveError(RuntimeError):
    """A collective failed: another rank died, hung past the process group's timeout, or broke the connection."""


def _collective(what: str, fn, *args, **kwargs):
    """Run one collective, turning the backend's failure into a :class:`CollectiveError` that says what and where."""
    try:
        return fn(*args, **kwargs)
    except RuntimeError as exc:
        group = kwargs.get("group")
        where = f"rank {dist.get_rank(group)} of {dist.get_world_size(group)}"
        raise CollectiveError(
            f"{where}: {what} failed: another process died, hung longer than the timeout, or closed its connection "
            f"({str(exc).splitlines()[0][:300]})"
        ) from exc


@dataclass(frozen=True)
class Shard:
    """Rank ``rank`` of ``world_size`` holds rows ``[rank * b, (rank + 1) * b)`` of a global batch of
    ``world_size * b`` rows."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def of(cls, group: dist.ProcessGroup | None) -> Shard:
        """This process's shard of ``group`` (one process, no group: the whole batch)."""
        if group is None:
            return cls()
        return cls(dist.get_rank(group), dist.get_world_size(group))

    def rows(self, global_batch: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a tensor holding the whole global batch (a view; the tensor itself for one rank)."""
        if self.world_size == 1:
            return global_batch
        b = global_batch.shape[0] // self.world_size
        return global_batch[self.rank * b : (self.rank + 1) * b]

    def local_size(self, global_size: int, name: str = "batch size") -> int:
        """The rows per rank; ``ValueError`` unless ``global_size`` splits evenly."""
        if global_size % self.world_size:
            raise ValueError(f"the {name} {global_size} does not split evenly over {self.world_size} processes")
        return global_size // self.world_size


def unwrap(module: nn.Module, group: dist.ProcessGroup | None = None) -> tuple[nn.Module, dist.ProcessGroup | None]:
    """A ``DistributedDataParallel`` module's inner module and process group (``group`` when given); any other
    module as it is, with ``group``."""
    if isinstance(module, nn.parallel.DistributedDataParallel):
        return module.module, group if group is not None else module.process_group
    return module, group


def refuse_static_graph(module: nn.Module) -> None:
    """``ValueError`` for a DDP module built with ``static_graph=True``: after a gradient penalty's double
    backward it skips the all-reduce without a word (each rank keeps its own gradients)."""
    if isinstance(module, nn.parallel.DistributedDataParallel) and module.static_graph:
        raise ValueError(
            "critic is DistributedDataParallel(static_graph=True), which silently skips the gradient all-reduce "
            "after a penalty's double backward; build it without static_graph, or pass the unwrapped critic to "
            "fastgan.CriticStep(..., process_group=...)"
        )


def all_reduce_gradients(params, group: dist.ProcessGroup | None = None) -> None:
    """Replace each ``p.grad`` by its mean over the ranks of ``group``: one all-reduce per (device, dtype).

    Args:
        params: the parameters (an iterable of tensors); those whose ``grad`` is None are left alone, and must
            be None on every rank (the same graph on every rank gives that).
        group: the process group (None: the default group).
    """
    buckets: dict[tuple, list[torch.Tensor]] = {}
    for p in params:
        if p.grad is not None:
            buckets.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad)
    world = dist.get_world_size(group)
    for grads in buckets.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        _collective("the gradient all-reduce", dist.all_reduce, flat, group=group)
        flat.div_(world)
        for g, mean in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(mean.view_as(g))


def reduce_stats(stats: dict[str, torch.Tensor], group: dist.ProcessGroup | None = None) -> dict[str, torch.Tensor]:
    """Step statistics over all ranks: the mean of each, the maximum of ``grad_norm_max`` (one collective
    each way)."""
    names = sorted(stats)
    values = torch.stack([stats[n].detach().float().reshape(()) for n in names])
    means, maxima = values.clone(), values.clone()
    _collective("the statistics' all-reduce", dist.all_reduce, means, group=group)
    _collective("the statistics' all-reduce", dist.all_reduce, maxima, op=dist.ReduceOp.MAX, group=group)
    means /= dist.get_world_size(group)
    return {n: (maxima[i] if n == "grad_norm_max" else means[i]) for i, n in enumerate(names)}


def any_rank(flag: bool, group: dist.ProcessGroup | None, device: torch.device) -> bool:
    """Whether ``flag`` is true on any rank of ``group`` (one all-reduce of one value on ``device``, a CUDA
    device for NCCL; a host sync)."""
    value = torch.tensor(float(flag), device=device)
    _collective("the stop request's all-reduce", dist.all_reduce, value, op=dist.ReduceOp.MAX, group=group)
    return bool(value.item())


def same_settings(settings: dict, group: dist.ProcessGroup | None = None) -> None:
    """``ValueError`` naming every setting that differs between ranks (raised on every rank)."""
    gathered: list = [None] * dist.get_world_size(group)
    _collective("the settings check", dist.all_gather_object, gathered, settings, group=group)
    differ = []
    for key in sorted(set().union(*(s.keys() for s in gathered))):
        values = [s.get(key) for s in gathered]
        if any(v != values[0] for v in values[1:]):
            differ.append(
                f"--{key.replace('_', '-')} (" + ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values)) + ")"
            )
    if differ:
        raise ValueError("the processes were started with different settings: " + "; ".join(differ))


def launched() -> bool:
    """Whether torchrun (or a launcher setting ``RANK`` and ``WORLD_SIZE``) started this process, even alone."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def world_size() -> int:
    """The number of processes of this job: the initialised default group's, else torchrun's, else 1."""
    if dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ["WORLD_SIZE"]) if launched() else 1


def init_from_environment(device_type: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> dist.ProcessGroup:
    """Join the job torchrun described in the environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ``MASTER_PORT``): gloo for CPU tensors, NCCL for CUDA ones (one GPU per ``LOCAL_RANK``). A collective that
    waits longer than ``timeout_s`` (a rank that died or hangs) raises instead of hanging."""
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    return dist.group.WORLD

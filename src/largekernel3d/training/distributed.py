"""Process-group set-up for multi-process training (``torchrun`` / DistributedDataParallel).

One process per device; each sees a disjoint shard of every epoch (``DistributedSampler``), gradients
are averaged by DDP's all-reduce, so after every step all ranks hold identical weights:

    w <- w - lr * (1 / R) * sum_r grad_r(w)            (R = world size)

Metrics are made global by summing the per-rank confusion matrices (:func:`all_reduce_sum`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` processes, computing on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0, argument: str = "train.device") -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available else ``cpu``; otherwise ``torch.device(name)``
    (``argument``: what the caller calls the setting, for the error when CUDA is asked for and absent)."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{argument}={name!r} but CUDA is not available; use 'cpu' or 'auto'")
    return device


def context_from_launcher(device: str = "auto", environ: Optional[Mapping[str, str]] = None) -> DistContext:
    """The context of a process started by ``torchrun`` (which passes ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), initialising the process group (NCCL on GPUs, gloo
    on CPUs) when the world has more than one process; a plain single process otherwise."""
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0"))
    local = int(env.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistContext(rank=rank, world_size=world, local_rank=local, device=dev)


def context_from_group(device: torch.device) -> DistContext:
    """The context of an already initialised process group (e.g. one set up by a test with ``spawn``)."""
    if not dist.is_initialized():
        return DistContext(device=device)
    return DistContext(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=device.index or 0, device=device
    )


def wrap_model(model: nn.Module, ctx: DistContext, sync_bn: bool) -> nn.Module:
    """Move ``model`` to ``ctx.device``; with several processes convert BatchNorm to SyncBatchNorm
    (GPU only: PyTorch's SyncBatchNorm has no CPU kernel) and wrap in DistributedDataParallel."""
    model = model.to(ctx.device)
    if not ctx.distributed:
        return model
    if sync_bn and ctx.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``tensor`` over all ranks (identity for a single process); returns a new tensor on the CPU."""
    if not ctx.distributed:
        return tensor.clone()
    backend_device = ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = tensor.to(backend_device).clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu()


def barrier(ctx: DistContext) -> None:
    """Wait for all ranks (no-op for a single process)."""
    if ctx.distributed:
        dist.barrier()

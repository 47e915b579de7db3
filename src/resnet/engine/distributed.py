"""Devices and multi-process training (``torchrun --nproc_per_node=N -m resnet train ...``).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; each process then trains a shard of every epoch
with DistributedDataParallel (NCCL on GPUs, gloo on the CPU). Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from resnet.device import resolve_device
from resnet.errors import ConfigError

__all__ = ["DistContext", "resolve_device", "init_distributed", "all_reduce_sum", "broadcast"]


@dataclass
class DistContext:
    """Where this process stands in a (possibly one-process) job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialized_here: bool = False  # we created the process group, so we destroy it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def close(self) -> None:
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()
            self.initialized_here = False


def init_distributed(device_name: str = "auto") -> DistContext:
    """Join the torchrun job described by the environment, or run as a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    context = DistContext(rank, world_size, local_rank, device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        context.initialized_here = True
    return context


def all_reduce_sum(tensor: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place) and return it."""
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Maximum of ``tensor`` over all processes (in place)."""
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def broadcast(value: Any, context: DistContext) -> Any:
    """Rank 0's ``value`` on every process (any picklable object)."""
    if not context.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_batch_split(batch_size: int, context: DistContext) -> int:
    """The per-process batch of a global ``batch_size``; it must split evenly."""
    if batch_size % context.world_size:
        raise ConfigError(
            f"batch_size {batch_size} does not split over {context.world_size} processes; "
            f"use a multiple of {context.world_size}"
        )
    return batch_size // context.world_size

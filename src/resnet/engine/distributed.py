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
from torch import nn

from resnet.errors import ConfigError

__all__ = [
    "DistContext",
    "init_distributed",
    "all_reduce_sum",
    "all_reduce_max",
    "broadcast",
    "check_batch_split",
    "SyncBatchNorm",
    "convert_sync_batchnorm",
]


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


def init_distributed(device: torch.device) -> DistContext:
    """Join the torchrun job described by the environment, or run as a single process, on the
    run's resolved ``device``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
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


class _SyncBatchNormFunction(torch.autograd.Function):
    """Batch normalisation with mean and variance over the global batch of all processes.

    Forward all-reduces (sum, sum of squares, count) per channel; backward all-reduces the two
    per-channel sums the input gradient needs, so ``dx`` is the gradient of the sum of every
    process's loss, as DDP expects before it averages parameter gradients.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        # Sums in float64: E[x^2] - E[x]^2 in float32 loses digits when the mean is large.
        wide = xf.double()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
        stats = torch.cat([wide.sum(dims), (wide * wide).sum(dims), count])
        dist.all_reduce(stats, op=dist.ReduceOp.SUM)
        channels = x.shape[1]
        total = stats[-1]
        mean64 = stats[:channels] / total
        var64 = (stats[channels : 2 * channels] / total - mean64 * mean64).clamp_min(0)
        mean, var = mean64.float(), var64.float()
        invstd = torch.rsqrt(var + eps)
        xhat = (xf - mean.view(shape)) * invstd.view(shape)
        ctx.save_for_backward(xhat, weight, invstd, total.float())
        out = xhat * weight.view(shape) + bias.view(shape)
        unbiased = (var64 * total / (total - 1).clamp_min(1)).float()
        return out.to(x.dtype), mean, unbiased

    @staticmethod
    def backward(ctx, grad_out, _grad_mean, _grad_var):
        xhat, weight, invstd, total = ctx.saved_tensors
        dims = [d for d in range(xhat.dim()) if d != 1]
        shape = [1, -1] + [1] * (xhat.dim() - 2)
        dy = grad_out.float()
        local = torch.cat([dy.sum(dims), (dy * xhat).sum(dims)])
        grad_weight, grad_bias = local[xhat.shape[1] :].clone(), local[: xhat.shape[1]].clone()
        dist.all_reduce(local, op=dist.ReduceOp.SUM)
        sum_dy, sum_dy_xhat = local.view(2, -1)
        scale = (weight * invstd / total).view(shape)
        dx = scale * (total * dy - sum_dy.view(shape) - xhat * sum_dy_xhat.view(shape))
        return dx.to(grad_out.dtype), grad_weight, grad_bias, None


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm (1d/2d/3d) whose training statistics are those of the global batch of every
    process (torch's ``nn.SyncBatchNorm`` runs on GPUs only; this one runs on any backend)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ConfigError(f"SyncBatchNorm needs (N, C, ...) input, got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        out, mean, var = _SyncBatchNormFunction.apply(x, self.weight, self.bias, self.eps)
        with torch.no_grad():
            momentum = self.momentum if self.momentum is not None else 0.1
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
            self.running_var.lerp_(var.to(self.running_var.dtype), momentum)
            self.num_batches_tracked += 1
        return out


def convert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with every affine, tracking BatchNorm replaced by :class:`SyncBatchNorm`
    (same parameters and buffers, so checkpoints and state_dict keys do not change)."""
    for name, child in model.named_children():
        if (
            isinstance(child, nn.modules.batchnorm._BatchNorm)
            and child.affine
            and child.track_running_stats
            and not isinstance(child, SyncBatchNorm)
        ):
            synced = SyncBatchNorm(child.num_features, child.eps, child.momentum)
            synced.load_state_dict(child.state_dict())
            synced.train(child.training)
            setattr(model, name, synced.to(child.weight.device))
        else:
            convert_sync_batchnorm(child)
    return model

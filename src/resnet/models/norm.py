"""Normalisation layers by name, so configs and checkpoints can say ``norm_layer="group"``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import torch
from torch import nn

from resnet.errors import ConfigError
from resnet.models.layers import batch_norm_nd

__all__ = ["resolve_norm_layer", "NORM_LAYERS", "FrozenBatchNorm2d", "NormOption"]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, for fine-tuning with small batches.

    Holds the same buffers as ``nn.BatchNorm2d`` (minus the batch counter), so BN weights load.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        for name, fill in (
            ("weight", 1.0),
            ("bias", 0.0),
            ("running_mean", 0.0),
            ("running_var", 1.0),
        ):
            self.register_buffer(name, torch.full((num_features,), fill))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def _group_norm(num_channels: int, groups: int = 32) -> nn.GroupNorm:
    # Fewer channels than groups (CIFAR's 16-channel stages) fall back to one group per channel.
    return nn.GroupNorm(min(groups, num_channels), num_channels)


NORM_LAYERS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm2d,
    "group": _group_norm,
    "frozen_batch": FrozenBatchNorm2d,
    # No normalisation at all: the setting in which the vanishing-gradient problem is starkest.
    "none": nn.Identity,
}


# A norm layer as the options take it: a name of NORM_LAYERS, a constructor, or None (BatchNorm).
NormOption = Union[str, Callable[[int], nn.Module], None]


def resolve_norm_layer(
    norm_layer: NormOption,
    spatial_dims: int = 2,
) -> Callable[[int], nn.Module]:
    """A norm constructor from a name in ``NORM_LAYERS``, a constructor, or None (BatchNorm).

    ``spatial_dims`` makes ``"batch"`` (and None) BatchNorm1d/2d/3d; ``"frozen_batch"`` is 2-d only.
    """
    if callable(norm_layer):
        return norm_layer
    if norm_layer is None or norm_layer == "batch":
        return batch_norm_nd(spatial_dims)
    if norm_layer not in NORM_LAYERS:
        raise ConfigError(
            f"unknown norm_layer {norm_layer!r}: choose one of {', '.join(NORM_LAYERS)}"
        )
    if norm_layer == "frozen_batch" and spatial_dims != 2:
        raise ConfigError(f"norm_layer 'frozen_batch' is 2-d only, got spatial_dims={spatial_dims}")
    return NORM_LAYERS[norm_layer]

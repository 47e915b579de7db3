"""Normalisation layers by name, so configs and checkpoints can say ``norm_layer="group"``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import torch
from torch import nn

from resnet.errors import ConfigError
from resnet.models.layers import batch_norm_nd

__all__ = [
    "resolve_norm_layer",
    "activation_after",
    "NORM_LAYERS",
    "FrozenBatchNorm2d",
    "EvoNormS0",
    "NormOption",
]


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


class EvoNormS0(nn.Module):
    """EvoNorm-S0 (Liu et al. 2020, arXiv 2004.02967), a normalisation and activation in one:
    ``x * sigmoid(v * x) / std_group(x) * weight + bias``, the standard deviation over groups
    of channels (32, as timm's ``EvoNorm2dS0``) and positions, no batch statistics. timm's
    ``resnetv2_50d_evos`` is ``preact_resnet50d`` with it in place of BatchNorm and ReLU."""

    activates = True  # the block puts no ReLU after it (``activation_after``)

    def __init__(self, num_features: int, groups: int = 32, eps: float = 1e-5) -> None:
        super().__init__()
        self.groups = min(groups, num_features)
        if num_features % self.groups:
            raise ConfigError(
                f"EvoNorm-S0 splits channels into {self.groups} groups; {num_features} channels "
                "do not divide into them"
            )
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.v = nn.Parameter(torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)  # (1, C, 1, ...): per channel
        grouped = x.reshape(x.shape[0], self.groups, -1)  # (B, G, C/G * positions)
        var = grouped.float().var(dim=2, unbiased=False, keepdim=True)
        std = var.add(self.eps).sqrt().to(x.dtype).expand(grouped.shape).reshape(x.shape)
        x = x * (x * self.v.view(shape).to(x.dtype)).sigmoid() / std
        return x * self.weight.view(shape).to(x.dtype) + self.bias.view(shape).to(x.dtype)


def activation_after(norm_layer: Callable[[int], nn.Module], inplace: bool) -> nn.Module:
    """The ReLU that follows a norm layer, or none where the norm activates itself
    (``EvoNormS0``)."""
    if getattr(norm_layer, "activates", False):
        return nn.Identity()
    return nn.ReLU(inplace=inplace)


def _group_norm(num_channels: int, groups: int = 32) -> nn.GroupNorm:
    # Fewer channels than groups (CIFAR's 16-channel stages) fall back to one group per channel.
    return nn.GroupNorm(min(groups, num_channels), num_channels)


NORM_LAYERS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm2d,
    "group": _group_norm,
    "frozen_batch": FrozenBatchNorm2d,
    # No normalisation at all: the setting in which the vanishing-gradient problem is starkest.
    "none": nn.Identity,
    # A norm that activates too, for the pre-activation nets (timm's resnetv2_50d_evos).
    "evonorm_s0": EvoNormS0,
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

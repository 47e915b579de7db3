"""Building pieces shared by the blocks and the network: N-d convs and stochastic depth.

``spatial_dims`` (1, 2 or 3) picks ``nn.Conv1d/2d/3d`` and ``nn.BatchNorm1d/2d/3d`` everywhere, so
the same code builds networks over signals, images and volumes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from resnet.errors import ConfigError

__all__ = [
    "NormLayer",
    "ConvNd",
    "conv_nd",
    "batch_norm_nd",
    "avg_pool_nd",
    "conv3x3",
    "conv1x1",
    "DropPath",
    "SHORTCUT_PADS",
    "ACTIVATIONS",
    "activation",
]

NormLayer = Callable[[int], nn.Module]
ConvNd = nn.modules.conv._ConvNd

CONVS: dict[int, type[ConvNd]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
BATCH_NORMS: dict[int, NormLayer] = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
AVG_POOLS = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
# Where option A's new zero channels go: on both sides of the old ones (the public CIFAR
# reproduction, akamaster/pytorch_resnet_cifar10) or after them (MONAI, and this package before).
SHORTCUT_PADS = ("both", "after")
# The activations a network may be built with, by name. ReLU is the paper's; SiLU (x * sigmoid(x),
# "swish"), GELU and hard-swish (x * relu6(x + 3) / 6, MobileNetV3's piecewise SiLU) are smooth
# or nearly so, which helps a run of a few hundred steps (ResNet9's act_layer). All but GELU run
# in place; autograd keeps what their backward needs.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
    "gelu": nn.GELU,
    "hardswish": lambda: nn.Hardswish(inplace=True),
}


def conv_nd(spatial_dims: int) -> type[ConvNd]:
    """``nn.Conv1d``, ``nn.Conv2d`` or ``nn.Conv3d`` for 1, 2 or 3 spatial dims."""
    if spatial_dims not in CONVS:
        raise ConfigError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
    return CONVS[spatial_dims]


def batch_norm_nd(spatial_dims: int) -> NormLayer:
    """``nn.BatchNorm1d``, ``nn.BatchNorm2d`` or ``nn.BatchNorm3d``: the blocks' default norm."""
    conv_nd(spatial_dims)  # the same check and message
    return BATCH_NORMS[spatial_dims]


def avg_pool_nd(spatial_dims: int) -> type[nn.Module]:
    """``nn.AvgPool1d/2d/3d``."""
    conv_nd(spatial_dims)
    return AVG_POOLS[spatial_dims]


def activation(name: str) -> nn.Module:
    """A new activation module by name: ``"relu"``, ``"silu"``, ``"gelu"`` or ``"hardswish"``."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def conv3x3(
    in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, *, spatial_dims: int = 2
) -> ConvNd:
    """3x3 (3^d) convolution with padding 1; no bias because a norm layer follows."""
    conv = conv_nd(spatial_dims)
    return conv(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(
    in_planes: int, out_planes: int, stride: int = 1, *, spatial_dims: int = 2, bias: bool = False
) -> ConvNd:
    """1x1 (1^d) convolution, used to change width and for projection shortcuts (option B)."""
    return conv_nd(spatial_dims)(in_planes, out_planes, 1, stride=stride, bias=bias)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a sample's residual branch with probability p.

    Surviving branches are scaled by 1/(1-p) so the expected output is unchanged at test time.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask_shape = [x.shape[0]] + [1] * (x.dim() - 1)
        mask = torch.empty(mask_shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"

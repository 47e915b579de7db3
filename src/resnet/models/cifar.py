"""CIFAR networks (arXiv 1512.03385 §4.2) and Wide ResNets (Zagoruyko & Komodakis 2016).

A 6n+2 layer net: a 3x3 conv, then three stages of n basic blocks on 32x32, 16x16 and 8x8 maps
with 16, 32 and 64 filters, global average pooling and a 10-way classifier. Residual nets use
shortcut option A (zero padding) by default, as in the paper, so ``resnetN`` and ``plainN`` have
exactly the same parameters: the only difference is the addition. Option A pads the new zero
channels on both sides of the old ones, as the public reproduction (akamaster/
pytorch_resnet_cifar10) does, so its checkpoints (``linear`` classifier, ``module.`` prefix) load
through ``load_weights`` and give its outputs.
"""

from __future__ import annotations

from typing import Any

from resnet.errors import ConfigError
from resnet.models.blocks import BasicBlock, PreActBasicBlock
from resnet.models.registry import register_model
from resnet.models.resnet import ResNet

__all__ = ["cifar_resnet", "wide_resnet"]

# 8 and 14 are not in the paper's table; they give Figure 6 a shallow end that trains fast.
CIFAR_DEPTHS = (8, 14, 20, 32, 44, 56, 110, 1202)
PLAIN_DEPTHS = (8, 14, 20, 32, 44, 56, 110)
WIDE_CONFIGS = ((16, 4), (16, 8), (22, 8), (28, 10), (40, 4))


def cifar_resnet(
    depth: int,
    *,
    residual: bool = True,
    shortcut: str = "A",
    num_classes: int = 10,
    **kwargs: Any,
) -> ResNet:
    """A 6n+2 layer CIFAR network, residual or plain."""
    if depth < 8 or (depth - 2) % 6 != 0:
        raise ConfigError(f"a CIFAR ResNet has 6n+2 layers (20, 32, 44, ...), got depth {depth}")
    n = (depth - 2) // 6
    return ResNet(
        BasicBlock,
        [n, n, n],
        num_classes,
        stem="cifar",
        stem_width=16,
        planes=(16, 32, 64),
        strides=(1, 2, 2),
        shortcut=shortcut,
        residual=residual,
        **kwargs,
    )


def wide_resnet(depth: int, widen_factor: int, *, num_classes: int = 10, **kwargs: Any) -> ResNet:
    """WRN-depth-k: pre-activation basic blocks, stages k times wider than the CIFAR ResNet."""
    if depth < 10 or (depth - 4) % 6 != 0:
        raise ConfigError(f"a Wide ResNet has 6n+4 layers (16, 22, 28, ...), got depth {depth}")
    n = (depth - 4) // 6
    k = widen_factor
    return ResNet(
        PreActBasicBlock,
        [n, n, n],
        num_classes,
        stem="cifar",
        stem_width=16,
        planes=(16 * k, 32 * k, 64 * k),
        strides=(1, 2, 2),
        shortcut="B",
        **kwargs,
    )


def _register_cifar(depth: int) -> None:
    def builder(**kwargs: Any) -> ResNet:
        return cifar_resnet(depth, **kwargs)

    builder.__name__ = f"resnet{depth}"
    builder.__doc__ = f"CIFAR ResNet-{depth}: {(depth - 2) // 6} basic blocks per stage."
    register_model(builder, family="cifar", default_input_size=32)


def _register_plain(depth: int) -> None:
    def builder(**kwargs: Any) -> ResNet:
        return cifar_resnet(depth, residual=False, **kwargs)

    builder.__name__ = f"plain{depth}"
    builder.__doc__ = f"Plain-{depth}: ResNet-{depth} without its shortcuts."
    register_model(builder, family="cifar", default_input_size=32)


def _register_wide(depth: int, k: int) -> None:
    def builder(**kwargs: Any) -> ResNet:
        return wide_resnet(depth, k, **kwargs)

    builder.__name__ = f"wrn{depth}_{k}"
    builder.__doc__ = f"Wide ResNet WRN-{depth}-{k}."
    register_model(builder, family="cifar", default_input_size=32)


for _depth in CIFAR_DEPTHS:
    _register_cifar(_depth)
for _depth in PLAIN_DEPTHS:
    _register_plain(_depth)
for _depth, _k in WIDE_CONFIGS:
    _register_wide(_depth, _k)

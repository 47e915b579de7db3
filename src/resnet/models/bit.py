"""Big Transfer's ResNet-v2 (Kolesnikov et al. 2019, arXiv 1912.11370): timm's ``resnetv2_*_bit``.

A pre-activation ResNet (``PreActBottleneck``) whose every convolution standardises its weights
(``std_conv.py``), with group norm (32 groups) instead of batch norm, so it fine-tunes at any
batch size; its stem pads with zeros before the max-pool (``stem_pool="max_zero_pad"``). The
``xN`` nets are N times as wide in every stage. timm's files (``resnetv2_50x1_bit`` ..) load into
these by ``load_weights`` (``timm_v2_names``) and compute the same outputs.
"""

from __future__ import annotations

from typing import Any

from resnet.models.blocks import PreActBottleneck
from resnet.models.resnet import BlockType
from resnet.models.resnet_d import variant_builder

__all__ = ["BIT_VARIANTS"]


def _bit(width_factor: int) -> dict[str, Any]:
    return {
        "stem_pool": "max_zero_pad",
        "norm_layer": "group",
        "weight_standardization": True,
        "stem_width": 64 * width_factor,
        "planes": tuple(64 * 2**stage * width_factor for stage in range(4)),
    }


_50, _101, _152 = (3, 4, 6, 3), (3, 4, 23, 3), (3, 8, 36, 3)
# name: (block, blocks per stage, options, one-line description)
BIT_VARIANTS: dict[str, tuple[BlockType, tuple[int, ...], dict[str, Any], str]] = {
    f"bit_resnet{depth}x{wide}": (
        PreActBottleneck,
        layers,
        _bit(wide),
        f"BiT ResNet-{depth}x{wide}: weight-standardised, group norm",
    )
    for depth, layers, wide in (
        (50, _50, 1),
        (50, _50, 3),
        (101, _101, 1),
        (101, _101, 3),
        (152, _152, 2),
        (152, _152, 4),
    )
}

for _name, (_block, _layers, _options, _doc) in BIT_VARIANTS.items():
    variant_builder(_name, _block, _layers, _options, _doc)

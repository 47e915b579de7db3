"""The "Bag of Tricks" ResNets (He et al. 2018, arXiv 1812.01187) and more depths and widths.

The paper's tweaks are options of the one ``ResNet``, not new networks:

- ResNet-C: a deep stem, three 3x3 convolutions instead of the 7x7 (``stem="deep"``);
- ResNet-D: on top of C, the projection shortcut average-pools before its 1x1 convolution
  instead of striding it, so it no longer drops three quarters of its input
  (``downsample="avg"``);
- timm's "t" nets: ResNet-D with a tiered stem, narrower first conv (``stem="deep_tiered"``).

The same stems and shortcuts on the pre-activation nets (``PREACT_VARIANTS``) are timm's
``resnetv2_18d`` .. ``resnetv2_152d`` and ``resnetv2_50t`` (their files load through
``timm_v2_names``).

Names, module names and shapes are timm's (``timm.create_model(name).state_dict()`` loads into
``create_model(name)`` with ``strict=True`` and gives the same outputs). The bottleneck is v1.5,
as in ``imagenet.py``.
"""

from __future__ import annotations

from typing import Any

from resnet.models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from resnet.models.registry import register_model
from resnet.models.resnet import BlockType, ResNet

__all__ = ["RESNET_D_VARIANTS", "PREACT_VARIANTS", "variant_builder"]

# The stem and shortcut of each letter (arXiv 1812.01187 Fig. 2; "t" is timm's).
_C = {"stem": "deep"}
_D = {"stem": "deep", "downsample": "avg"}
_T = {"stem": "deep_tiered", "downsample": "avg"}
_S = {"stem": "deep", "stem_width": 128}  # timm's "s": the deep stem at 64, 64, 128 channels
_GN = {"norm_layer": "group"}
_BASIC, _BOTTLENECK = BasicBlock, Bottleneck
_DEEP = (3, 4, 23, 3)  # ResNet-101's stages

# name: (block, blocks per stage, options, one-line description)
RESNET_D_VARIANTS: dict[str, tuple[BlockType, tuple[int, ...], dict[str, Any], str]] = {
    "resnet10t": (_BASIC, (1, 1, 1, 1), _T, "ResNet-10-T: one basic block per stage"),
    "resnet14t": (_BOTTLENECK, (1, 1, 1, 1), _T, "ResNet-14-T: one bottleneck per stage"),
    "resnet18d": (_BASIC, (2, 2, 2, 2), _D, "ResNet-18-D"),
    "resnet26": (_BOTTLENECK, (2, 2, 2, 2), {}, "ResNet-26: two bottlenecks per stage"),
    "resnet26d": (_BOTTLENECK, (2, 2, 2, 2), _D, "ResNet-26-D"),
    "resnet26t": (_BOTTLENECK, (2, 2, 2, 2), _T, "ResNet-26-T"),
    "resnet34d": (_BASIC, (3, 4, 6, 3), _D, "ResNet-34-D"),
    "resnet50c": (_BOTTLENECK, (3, 4, 6, 3), _C, "ResNet-50-C: deep stem only"),
    "resnet50d": (_BOTTLENECK, (3, 4, 6, 3), _D, "ResNet-50-D"),
    "resnet50t": (_BOTTLENECK, (3, 4, 6, 3), _T, "ResNet-50-T"),
    "resnet50s": (_BOTTLENECK, (3, 4, 6, 3), _S, "ResNet-50-S: a deep stem twice as wide"),
    "resnet50_gn": (_BOTTLENECK, (3, 4, 6, 3), _GN, "ResNet-50 with group norm (32 groups)"),
    "resnet101c": (_BOTTLENECK, _DEEP, _C, "ResNet-101-C"),
    "resnet101s": (_BOTTLENECK, _DEEP, _S, "ResNet-101-S"),
    "resnet101d": (_BOTTLENECK, _DEEP, _D, "ResNet-101-D"),
    "resnet152c": (_BOTTLENECK, (3, 8, 36, 3), _C, "ResNet-152-C"),
    "resnet152s": (_BOTTLENECK, (3, 8, 36, 3), _S, "ResNet-152-S"),
    "resnet152d": (_BOTTLENECK, (3, 8, 36, 3), _D, "ResNet-152-D"),
    "resnet200": (_BOTTLENECK, (3, 24, 36, 3), {}, "ResNet-200 (arXiv 1603.05027's depth)"),
    "resnet200d": (_BOTTLENECK, (3, 24, 36, 3), _D, "ResNet-200-D"),
    "resnext50d_32x4d": (
        _BOTTLENECK,
        (3, 4, 6, 3),
        {**_D, "groups": 32, "width_per_group": 4},
        "ResNeXt-50-D 32x4d",
    ),
    "resnext101_32x4d": (
        _BOTTLENECK,
        _DEEP,
        {"groups": 32, "width_per_group": 4},
        "ResNeXt-101 32x4d (Xie et al. 2017, arXiv 1611.05431)",
    ),
    "resnext101_32x16d": (
        _BOTTLENECK,
        _DEEP,
        {"groups": 32, "width_per_group": 16},
        "ResNeXt-101 32x16d (the WSL width, arXiv 1805.00932)",
    ),
    "resnext101_32x32d": (
        _BOTTLENECK,
        _DEEP,
        {"groups": 32, "width_per_group": 32},
        "ResNeXt-101 32x32d (the WSL width, arXiv 1805.00932)",
    ),
}

# Pre-activation (arXiv 1603.05027) with the D and T stems and shortcuts: timm's ResNetV2 ones.
PREACT_VARIANTS: dict[str, tuple[BlockType, tuple[int, ...], dict[str, Any], str]] = {
    "preact_resnet18d": (PreActBasicBlock, (2, 2, 2, 2), _D, "Pre-activation ResNet-18-D"),
    "preact_resnet34d": (PreActBasicBlock, (3, 4, 6, 3), _D, "Pre-activation ResNet-34-D"),
    "preact_resnet50d": (PreActBottleneck, (3, 4, 6, 3), _D, "Pre-activation ResNet-50-D"),
    "preact_resnet50t": (PreActBottleneck, (3, 4, 6, 3), _T, "Pre-activation ResNet-50-T"),
    "preact_resnet101d": (PreActBottleneck, _DEEP, _D, "Pre-activation ResNet-101-D"),
    "preact_resnet152d": (PreActBottleneck, (3, 8, 36, 3), _D, "Pre-activation ResNet-152-D"),
}


def variant_builder(
    name: str,
    block: BlockType,
    layers: tuple[int, ...],
    options: dict[str, Any],
    doc: str,
    default_input_size: int = 224,
) -> Any:
    """A registered builder ``name(**kwargs)``: ``ResNet(block, layers, **options)``.

    The caller's kwargs override the variant's options (e.g. ``stem_pool="none"``).
    """

    def builder(**kwargs: Any) -> ResNet:
        return ResNet(block, list(layers), **{**options, **kwargs})

    builder.__name__ = name
    builder.__qualname__ = name
    builder.__doc__ = f"{doc}."
    return register_model(builder, default_input_size=default_input_size)


for _name, (_block, _layers, _options, _doc) in {**RESNET_D_VARIANTS, **PREACT_VARIANTS}.items():
    variant_builder(_name, _block, _layers, _options, _doc)

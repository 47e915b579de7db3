"""ResNets with channel attention: SE-ResNet/ResNeXt, ECA-ResNet and ResNet-RS.

- SE (Hu et al. 2017, arXiv 1709.01507): each block gates its channels by a squeeze (global
  pool) and an excitation (a bottleneck MLP, 1/16 as wide);
- ECA (Wang et al. 2019, arXiv 1910.03151): the same gate from a small 1-d conv, no bottleneck;
- ResNet-RS (Bello et al. 2021, arXiv 2103.07579): ResNet-D with SE at 1/4 and a strided conv
  in place of the stem's max-pool.

Each is ``ResNet`` with ``attn_layer`` set; names, module names and shapes are timm's, so
``timm.create_model(name).state_dict()`` loads strictly and gives the same outputs. SENet's own
nets (``LEGACY_SE_VARIANTS``, timm's ``legacy_se*``) load through ``senet_names``.
"""

from __future__ import annotations

from typing import Any

from resnet.models.blocks import BasicBlock, Bottleneck
from resnet.models.resnet import BlockType
from resnet.models.resnet_d import variant_builder

__all__ = ["ATTENTION_VARIANTS", "LEGACY_SE_VARIANTS"]

_SE = {"attn_layer": "se"}
_ECA = {"attn_layer": "eca"}
_D = {"stem": "deep", "downsample": "avg"}
_T = {"stem": "deep_tiered", "downsample": "avg"}
_X32x4 = {"groups": 32, "width_per_group": 4}
_X32x8 = {"groups": 32, "width_per_group": 8}
_X64x4 = {"groups": 64, "width_per_group": 4}
_RS = {**_D, "stem_pool": "conv", "attn_layer": "se", "attn_ratio": 0.25}
_B, _BN = BasicBlock, Bottleneck

# name: (block, blocks per stage, options, one-line description)
ATTENTION_VARIANTS: dict[str, tuple[BlockType, tuple[int, ...], dict[str, Any], str]] = {
    "seresnet18": (_B, (2, 2, 2, 2), _SE, "SE-ResNet-18"),
    "seresnet34": (_B, (3, 4, 6, 3), _SE, "SE-ResNet-34"),
    "seresnet50": (_BN, (3, 4, 6, 3), _SE, "SE-ResNet-50"),
    "seresnet101": (_BN, (3, 4, 23, 3), _SE, "SE-ResNet-101"),
    "seresnet152": (_BN, (3, 8, 36, 3), _SE, "SE-ResNet-152"),
    "seresnet152d": (_BN, (3, 8, 36, 3), {**_SE, **_D}, "SE-ResNet-152-D"),
    "seresnext26d_32x4d": (_BN, (2, 2, 2, 2), {**_SE, **_D, **_X32x4}, "SE-ResNeXt-26-D 32x4d"),
    "seresnext26t_32x4d": (_BN, (2, 2, 2, 2), {**_SE, **_T, **_X32x4}, "SE-ResNeXt-26-T 32x4d"),
    "seresnext50_32x4d": (_BN, (3, 4, 6, 3), {**_SE, **_X32x4}, "SE-ResNeXt-50 32x4d"),
    "seresnext101_32x4d": (_BN, (3, 4, 23, 3), {**_SE, **_X32x4}, "SE-ResNeXt-101 32x4d"),
    "seresnext101_32x8d": (_BN, (3, 4, 23, 3), {**_SE, **_X32x8}, "SE-ResNeXt-101 32x8d"),
    "seresnext101d_32x8d": (
        _BN,
        (3, 4, 23, 3),
        {**_SE, **_D, **_X32x8},
        "SE-ResNeXt-101-D 32x8d",
    ),
    "seresnext101_64x4d": (_BN, (3, 4, 23, 3), {**_SE, **_X64x4}, "SE-ResNeXt-101 64x4d"),
    "ecaresnetlight": (
        _BN,
        (1, 1, 11, 3),
        {**_ECA, "downsample": "avg"},
        "ECA-ResNet-Light: 1, 1, 11, 3 bottlenecks",
    ),
    "ecaresnet26t": (_BN, (2, 2, 2, 2), {**_ECA, **_T}, "ECA-ResNet-26-T"),
    "ecaresnet50d": (_BN, (3, 4, 6, 3), {**_ECA, **_D}, "ECA-ResNet-50-D"),
    "ecaresnet50t": (_BN, (3, 4, 6, 3), {**_ECA, **_T}, "ECA-ResNet-50-T"),
    "ecaresnet101d": (_BN, (3, 4, 23, 3), {**_ECA, **_D}, "ECA-ResNet-101-D"),
    "ecaresnet269d": (_BN, (3, 30, 48, 8), {**_ECA, **_D}, "ECA-ResNet-269-D"),
    "resnetrs50": (_BN, (3, 4, 6, 3), _RS, "ResNet-RS-50"),
    "resnetrs101": (_BN, (3, 4, 23, 3), _RS, "ResNet-RS-101"),
    "resnetrs152": (_BN, (3, 8, 36, 3), _RS, "ResNet-RS-152"),
    "resnetrs200": (_BN, (3, 24, 36, 3), _RS, "ResNet-RS-200"),
    "resnetrs270": (_BN, (4, 29, 53, 4), _RS, "ResNet-RS-270"),
    "resnetrs350": (_BN, (4, 36, 72, 4), _RS, "ResNet-RS-350"),
    "resnetrs420": (_BN, (4, 44, 87, 4), _RS, "ResNet-RS-420"),
}

# SENet's own nets (Hu et al.'s Caffe models, via Cadene's pretrainedmodels; timm's legacy_se*):
# Caffe's stem pool, SE squeezing by 16 unrounded (64 channels to 4, where timm's current SE
# rounds to 8), SE-ResNet bottlenecks strided on the first 1x1, and timm's legacy
# SE-ResNet-18/34 activating before SE.
_LEGACY = {"attn_layer": "se_legacy", "stem_pool": "max_ceil"}
_LEGACY_V1 = {**_LEGACY, "stride_in_1x1": True}
_LEGACY_BASIC = {**_LEGACY, "relu_before_attn": True}
LEGACY_SE_VARIANTS: dict[str, tuple[BlockType, tuple[int, ...], dict[str, Any], str]] = {
    "legacy_seresnet18": (_B, (2, 2, 2, 2), _LEGACY_BASIC, "SENet's SE-ResNet-18 (timm's)"),
    "legacy_seresnet34": (_B, (3, 4, 6, 3), _LEGACY_BASIC, "SENet's SE-ResNet-34 (timm's)"),
    "legacy_seresnet50": (_BN, (3, 4, 6, 3), _LEGACY_V1, "SENet's SE-ResNet-50"),
    "legacy_seresnet101": (_BN, (3, 4, 23, 3), _LEGACY_V1, "SENet's SE-ResNet-101"),
    "legacy_seresnet152": (_BN, (3, 8, 36, 3), _LEGACY_V1, "SENet's SE-ResNet-152"),
    "legacy_seresnext26_32x4d": (
        _BN,
        (2, 2, 2, 2),
        {**_LEGACY, **_X32x4},
        "SENet's SE-ResNeXt-26 32x4d",
    ),
    "legacy_seresnext50_32x4d": (
        _BN,
        (3, 4, 6, 3),
        {**_LEGACY, **_X32x4},
        "SENet's SE-ResNeXt-50 32x4d",
    ),
    "legacy_seresnext101_32x4d": (
        _BN,
        (3, 4, 23, 3),
        {**_LEGACY, **_X32x4},
        "SENet's SE-ResNeXt-101 32x4d",
    ),
    # SENet-154 (the ILSVRC 2017 winner): a three-conv stem to 128 channels, 64-group
    # bottlenecks whose first 1x1 is half the 3x3's width, 3x3 projections where a stage
    # subsamples; the grouped 3x3 strides, as in the SE-ResNeXts. timm's 0.2 dropout before the
    # classifier is not built (no zoo model has one): a fine-tuner sets its own regularisation.
    "legacy_senet154": (
        _BN,
        (3, 8, 36, 3),
        {
            **_LEGACY,
            **_X64x4,
            "stem": "deep",
            "stem_width": 128,
            "first_conv_ratio": 0.5,
            "downsample": "conv3x3",
        },
        "SENet-154",
    ),
}

for _name, (_block, _layers, _options, _doc) in {
    **ATTENTION_VARIANTS,
    **LEGACY_SE_VARIANTS,
}.items():
    variant_builder(_name, _block, _layers, _options, _doc)

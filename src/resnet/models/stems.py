"""The stem: what turns the input into the first stage's feature map.

- ``"imagenet"``: one 7x7/2 convolution (arXiv 1512.03385, Table 1);
- ``"cifar"``: one 3x3 convolution at full resolution (§4.2);
- ``"deep"``: three 3x3 convolutions, the first with stride 2: ResNet-C of "Bag of Tricks"
  (He et al. 2018, arXiv 1812.01187), same receptive field as 7x7, cheaper and more accurate;
- ``"deep_tiered"``: the same with a narrower first convolution (timm's ResNet-T).

Then a pool halves the resolution: a 3x3/2 max-pool (``"max"``), the same after a zero padding
instead of its own (BiT's, ``"max_zero_pad"``: where a pre-activation stem's output is negative,
a zero border wins the max), unpadded with the last window cut short (Caffe's, as SENet's nets
pool: ``"max_ceil"``), a 3x3/2 conv-BN-ReLU as in ResNet-RS (Bello et al. 2021, arXiv
2103.07579; ``"conv"``), the anti-aliased nets' pools (``blur_pool.py``: a 2x2/2 average pool,
``"avg"``, or a 3x3/1 max-pool then the blur that subsamples, ``"max_blur"``), or nothing
(``"none"``).
The module names (``conv1``, ``conv1.0`` .. ``conv1.6``, ``maxpool.0``) are timm's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from torch import nn

from resnet.errors import ConfigError
from resnet.models.blur_pool import anti_alias_pool
from resnet.models.layers import NormLayer, avg_pool_nd, conv_nd
from resnet.models.norm import activation_after

__all__ = ["STEM_TYPES", "STEM_POOLS", "stem_preset", "make_stem_conv", "make_stem_pool"]

# Kernel and stride of a one-conv stem, and its pool; the deep stems always use 3x3 kernels.
_PRESETS = {
    "imagenet": (7, 2, "max"),
    "cifar": (3, 1, "none"),
    "deep": (3, 2, "max"),
    "deep_tiered": (3, 2, "max"),
}
STEM_TYPES = tuple(_PRESETS)
STEM_POOLS = ("max", "max_zero_pad", "max_ceil", "conv", "avg", "max_blur", "none")
_MAX_POOLS = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_ZERO_PADS = {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d}


def stem_preset(stem: str) -> tuple[int, int, str]:
    """``(kernel, stride, pool)`` of a stem type."""
    if stem not in _PRESETS:
        raise ConfigError(f"stem must be one of {', '.join(STEM_TYPES)}, got {stem!r}")
    return _PRESETS[stem]


def make_stem_conv(
    stem: str,
    in_chans: int,
    width: int,
    kernel: Sequence[int],
    stride: Sequence[int],
    norm_layer: NormLayer,
    spatial_dims: int,
) -> nn.Module:
    """The stem convolution(s): ``(B, in_chans, *S) -> (B, width, *S / stride)``."""
    conv = conv_nd(spatial_dims)
    if stem in ("imagenet", "cifar"):
        padding = tuple(k // 2 for k in kernel)
        return conv(
            in_chans, width, tuple(kernel), stride=tuple(stride), padding=padding, bias=False
        )
    inner = width // 2
    first = 3 * (inner // 4) if stem == "deep_tiered" else inner
    return nn.Sequential(
        conv(in_chans, first, 3, stride=tuple(stride), padding=1, bias=False),
        norm_layer(first),
        activation_after(norm_layer, inplace=True),
        conv(first, inner, 3, padding=1, bias=False),
        norm_layer(inner),
        activation_after(norm_layer, inplace=True),
        conv(inner, width, 3, padding=1, bias=False),
    )


def make_stem_pool(
    pool: str, width: int, norm_layer: Optional[NormLayer], spatial_dims: int
) -> nn.Module:
    """The stem's downsampling after the convolution(s), or ``nn.Identity`` for ``"none"``."""
    if pool == "max":
        return _MAX_POOLS[spatial_dims](3, 2, 1)
    if pool == "max_ceil":
        return _MAX_POOLS[spatial_dims](3, 2, 0, ceil_mode=True)
    if pool == "max_zero_pad":
        return nn.Sequential(_ZERO_PADS[spatial_dims](1, 0.0), _MAX_POOLS[spatial_dims](3, 2, 0))
    if pool == "conv":
        if norm_layer is None:
            raise ConfigError("stem_pool 'conv' needs a norm layer after its convolution")
        conv = conv_nd(spatial_dims)(width, width, 3, stride=2, padding=1, bias=False)
        return nn.Sequential(conv, norm_layer(width), activation_after(norm_layer, inplace=True))
    if pool == "avg":
        return avg_pool_nd(spatial_dims)(2)  # timm's: rounds down, no shortcut to agree with
    if pool == "max_blur":
        max_pool = _MAX_POOLS[spatial_dims](3, 1, 1)
        return nn.Sequential(max_pool, anti_alias_pool("blur", width, spatial_dims))
    if pool == "none":
        return nn.Identity()
    raise ConfigError(f"stem_pool must be one of {', '.join(STEM_POOLS)}, got {pool!r}")

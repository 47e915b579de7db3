"""The ResNet network: a stem, stages of blocks, global pooling and a linear classifier.

One class serves the ImageNet family (He et al. 2015, arXiv 1512.03385, Table 1; torchvision's
module names so its weights load unchanged), the CIFAR family (§4.2: a 3x3 stem and three stages
of 16/32/64 channels) and the pre-activation family (arXiv 1603.05027). With ``spatial_dims`` 1
or 3 the same network runs over signals or volumes, its stem set by MONAI's options
(``conv1_t_size``, ``conv1_t_stride``, ``no_max_pool``). The builders live in ``imagenet.py``,
``cifar.py`` and ``resnet3d.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from resnet.errors import ConfigError
from resnet.models.blocks import (
    BasicBlock,
    Bottleneck,
    NormLayer,
    PreActBasicBlock,
    PreActBottleneck,
    ZeroPadShortcut,
    batch_norm_nd,
    conv1x1,
    conv_nd,
)

__all__ = ["ResNet", "BlockType"]

BlockType = Union[
    type[BasicBlock], type[Bottleneck], type[PreActBasicBlock], type[PreActBottleneck]
]
PREACT_BLOCKS = (PreActBasicBlock, PreActBottleneck)
# Stem convolution kernel, its stride and whether a 3x3/2 max-pool follows: Table 1's 7x7/2 conv
# and pool, or the single 3x3 conv of the CIFAR nets (§4.2).
STEMS = {"imagenet": (7, 2, True), "cifar": (3, 1, False)}
_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG_POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)


class ResNet(nn.Module):
    """A residual (or, with ``residual=False``, plain) convolutional network.

    Args:
        block: the block class of every stage.
        layers: number of blocks per stage, e.g. ``[2, 2, 2, 2]`` for ResNet-18.
        num_classes: size of the classifier output.
        in_chans: input channels (1 for grayscale and many medical images).
        spatial_dims: 1 (signals), 2 (images) or 3 (volumes): picks ConvNd, BatchNormNd, pooling.
        stem: ``"imagenet"`` (7x7/2 conv + 3x3/2 max-pool) or ``"cifar"`` (one 3x3 conv).
        conv1_t_size, conv1_t_stride, no_max_pool: override the stem's kernel and stride (an int or
            one per spatial dim) and drop its max-pool (MONAI's names; None keeps ``stem``'s).
        stem_width: channels out of the stem.
        planes: base width of each stage (a bottleneck outputs ``4 * planes``).
        strides: stride of the first block of each stage.
        shortcut: ``"A"`` zero-padding or ``"B"`` 1x1 projection, where shapes change.
        residual: add the shortcut (a ResNet) or not (the plain network of the same depth).
        zero_init_residual: start each residual branch's last BN at zero, so every block starts
            as the identity (Goyal et al. 2017). Plain nets ignore it: it would cut their only path.
        groups, width_per_group: ResNeXt cardinality and bottleneck width.
        drop_path_rate: stochastic depth rate of the last block, rising linearly from 0.
        norm_layer: normalisation constructor taking the channel count (default BatchNormNd).
    """

    def __init__(
        self,
        block: BlockType,
        layers: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        *,
        spatial_dims: int = 2,
        stem: str = "imagenet",
        conv1_t_size: Union[int, Sequence[int], None] = None,
        conv1_t_stride: Union[int, Sequence[int], None] = None,
        no_max_pool: Optional[bool] = None,
        stem_width: int = 64,
        planes: Sequence[int] = (64, 128, 256, 512),
        strides: Sequence[int] = (1, 2, 2, 2),
        shortcut: str = "B",
        residual: bool = True,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        drop_path_rate: float = 0.0,
        norm_layer: Optional[NormLayer] = None,
    ) -> None:
        super().__init__()
        _check_options(layers, planes, strides, stem, shortcut, num_classes, in_chans)
        if not 0.0 <= drop_path_rate < 1.0:
            raise ConfigError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        norm_layer = norm_layer or batch_norm_nd(spatial_dims)
        self._norm_layer = norm_layer
        self.spatial_dims = spatial_dims
        self.in_chans = in_chans
        self.preact = block in PREACT_BLOCKS
        self.residual = residual
        self.shortcut = shortcut
        self.groups = groups
        self.base_width = width_per_group
        self.inplanes = stem_width
        self.dilation = 1

        preset_kernel, preset_stride, max_pool = STEMS[stem]
        kernel = _per_dim(conv1_t_size, preset_kernel, spatial_dims, "conv1_t_size")
        stem_stride = _per_dim(conv1_t_stride, preset_stride, spatial_dims, "conv1_t_stride")
        max_pool = max_pool if no_max_pool is None else not no_max_pool
        padding = tuple(k // 2 for k in kernel)
        self.conv1 = conv_nd(spatial_dims)(
            in_chans, stem_width, kernel, stride=stem_stride, padding=padding, bias=False
        )
        # A pre-activation net's first block normalises its input itself (Wide ResNet).
        self.bn1 = nn.Identity() if self.preact and stem == "cifar" else norm_layer(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = _MAX_POOL[spatial_dims](3, 2, 1) if max_pool else nn.Identity()

        total_blocks = sum(layers)
        drop_rates = [drop_path_rate * i / max(total_blocks - 1, 1) for i in range(total_blocks)]
        self.num_stages = len(layers)
        self.feature_info: list[dict[str, Any]] = []
        reduction = max(stem_stride) * (2 if max_pool else 1)
        for index, (depth, width, stride) in enumerate(zip(layers, planes, strides)):
            rates = drop_rates[sum(layers[:index]) : sum(layers[: index + 1])]
            stage = self._make_layer(block, width, depth, stride, rates)
            setattr(self, f"layer{index + 1}", stage)
            reduction *= stride
            self.feature_info.append(
                {"module": f"layer{index + 1}", "num_chs": self.inplanes, "reduction": reduction}
            )
        # TorchScript needs a fixed forward; a three-stage (CIFAR) net has an empty fourth stage.
        if self.num_stages == 3:
            self.layer4 = nn.Identity()

        self.num_features = self.inplanes
        # Pre-activation nets end with BN-ReLU, since their blocks end with a bare addition.
        self.norm = norm_layer(self.num_features) if self.preact else nn.Identity()
        self.avgpool = _AVG_POOL[spatial_dims]((1,) * spatial_dims)
        self.fc = nn.Linear(self.num_features, num_classes)

        self._init_weights(zero_init_residual and residual)

    def _make_layer(
        self, block: BlockType, planes: int, blocks: int, stride: int, drop_rates: list[float]
    ) -> nn.Sequential:
        downsample = None
        dims = self.spatial_dims
        out_channels = planes * block.expansion
        if self.residual and (stride != 1 or self.inplanes != out_channels):
            if self.shortcut == "A":
                extra = out_channels - self.inplanes
                downsample = ZeroPadShortcut(stride, extra, spatial_dims=dims)
            else:
                projection = conv1x1(self.inplanes, out_channels, stride, spatial_dims=dims)
                # A pre-activation block feeds the projection its normalised input: no norm here.
                norm = [] if self.preact else [self._norm_layer(out_channels)]
                downsample = nn.Sequential(projection, *norm)
        layers = []
        for index in range(blocks):
            layers.append(
                block(
                    self.inplanes,
                    planes,
                    stride if index == 0 else 1,
                    downsample if index == 0 else None,
                    self.groups,
                    self.base_width,
                    1,
                    self._norm_layer,
                    residual=self.residual,
                    drop_path_rate=drop_rates[index],
                    spatial_dims=dims,
                )
            )
            self.inplanes = out_channels
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.modules.conv._ConvNd):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, _NORMS):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
        if zero_init_residual:
            for module in self.modules():
                last_norm = getattr(module, "last_norm", None)
                if callable(last_norm) and isinstance(last_norm(), _NORMS):
                    nn.init.constant_(last_norm().weight, 0)

    def stages(self) -> list[nn.Sequential]:
        """The stages ``layer1..layerN`` in order; each is a sequence of blocks."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, in_chans, *S) -> (B, num_features, *S / reduction): H/32, W/32 for ImageNet nets."""
        x = self.forward_stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        if self.preact:
            x = self.relu(self.norm(x))
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, C, *s) -> pooled (B, C) when ``pre_logits``, else logits (B, num_classes)."""
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one of ``num_classes`` outputs."""
        if num_classes < 1:
            raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
        device = self.fc.weight.device
        self.fc = nn.Linear(self.num_features, num_classes, device=device)


def _check_options(
    layers: Sequence[int],
    planes: Sequence[int],
    strides: Sequence[int],
    stem: str,
    shortcut: str,
    num_classes: int,
    in_chans: int,
) -> None:
    if not len(layers) == len(planes) == len(strides) or len(layers) not in (3, 4):
        raise ConfigError("layers, planes and strides must all have 3 or 4 entries, one per stage")
    if stem not in STEMS:
        raise ConfigError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
    if shortcut not in ("A", "B"):
        raise ConfigError(
            f"shortcut must be 'A' (zero padding) or 'B' (projection), got {shortcut!r}"
        )
    if num_classes < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    if in_chans < 1:
        raise ConfigError(f"in_chans must be at least 1, got {in_chans}")


def _per_dim(
    value: Union[int, Sequence[int], None], preset: int, spatial_dims: int, name: str
) -> tuple[int, ...]:
    """One positive int per spatial dim, from an int, a sequence, or None (the stem's preset)."""
    value = preset if value is None else value
    values = (value,) * spatial_dims if isinstance(value, int) else tuple(value)
    if len(values) != spatial_dims or any(int(v) < 1 for v in values):
        raise ConfigError(
            f"{name} must be a positive int or {spatial_dims} positive ints, got {value!r}"
        )
    return tuple(int(v) for v in values)

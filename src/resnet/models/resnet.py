"""The ResNet network: a stem, stages of blocks, global pooling and a linear classifier.

One class serves the ImageNet family (He et al. 2015, arXiv 1512.03385, Table 1; torchvision's
module names so its weights load unchanged), the CIFAR family (§4.2: a 3x3 stem and three stages
of 16/32/64 channels) and the pre-activation family (arXiv 1603.05027). The builders live in
``imagenet.py`` and ``cifar.py``.
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
    conv1x1,
)

__all__ = ["ResNet", "BlockType"]

BlockType = Union[
    type[BasicBlock], type[Bottleneck], type[PreActBasicBlock], type[PreActBottleneck]
]
PREACT_BLOCKS = (PreActBasicBlock, PreActBottleneck)


class ResNet(nn.Module):
    """A residual (or, with ``residual=False``, plain) convolutional network.

    Args:
        block: the block class of every stage.
        layers: number of blocks per stage, e.g. ``[2, 2, 2, 2]`` for ResNet-18.
        num_classes: size of the classifier output.
        in_chans: input channels (1 for grayscale and many medical images).
        stem: ``"imagenet"`` (7x7/2 conv + 3x3/2 max-pool) or ``"cifar"`` (one 3x3 conv).
        stem_width: channels out of the stem.
        planes: base width of each stage (a bottleneck outputs ``4 * planes``).
        strides: stride of the first block of each stage.
        shortcut: ``"A"`` zero-padding or ``"B"`` 1x1 projection, where shapes change.
        residual: add the shortcut (a ResNet) or not (the plain network of the same depth).
        zero_init_residual: start each residual branch's last BN at zero, so every block starts
            as the identity (Goyal et al. 2017). Plain nets ignore it: it would cut their only path.
        groups, width_per_group: ResNeXt cardinality and bottleneck width.
        drop_path_rate: stochastic depth rate of the last block, rising linearly from 0.
        norm_layer: normalisation constructor taking the channel count (default BatchNorm2d).
    """

    def __init__(
        self,
        block: BlockType,
        layers: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        *,
        stem: str = "imagenet",
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
        norm_layer = norm_layer or nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.preact = block in PREACT_BLOCKS
        self.residual = residual
        self.shortcut = shortcut
        self.groups = groups
        self.base_width = width_per_group
        self.inplanes = stem_width
        self.dilation = 1

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, stem_width, 7, stride=2, padding=3, bias=False)
            self.bn1 = norm_layer(stem_width)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_chans, stem_width, 3, stride=1, padding=1, bias=False)
            # A pre-activation net's first block normalises its input itself (Wide ResNet).
            self.bn1 = nn.Identity() if self.preact else norm_layer(stem_width)
            self.maxpool = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

        total_blocks = sum(layers)
        drop_rates = [drop_path_rate * i / max(total_blocks - 1, 1) for i in range(total_blocks)]
        self.num_stages = len(layers)
        self.feature_info: list[dict[str, Any]] = []
        reduction = 4 if stem == "imagenet" else 1
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
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.num_features, num_classes)

        self._init_weights(zero_init_residual and residual)

    def _make_layer(
        self, block: BlockType, planes: int, blocks: int, stride: int, drop_rates: list[float]
    ) -> nn.Sequential:
        downsample = None
        out_channels = planes * block.expansion
        if self.residual and (stride != 1 or self.inplanes != out_channels):
            if self.shortcut == "A":
                downsample = ZeroPadShortcut(stride, out_channels - self.inplanes)
            elif self.preact:
                # The pre-activated input feeds the projection, so it needs no norm of its own.
                downsample = nn.Sequential(conv1x1(self.inplanes, out_channels, stride))
            else:
                downsample = nn.Sequential(
                    conv1x1(self.inplanes, out_channels, stride), self._norm_layer(out_channels)
                )
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
                )
            )
            self.inplanes = out_channels
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
        if zero_init_residual:
            for module in self.modules():
                last_norm = getattr(module, "last_norm", None)
                if callable(last_norm) and isinstance(last_norm(), nn.BatchNorm2d):
                    nn.init.constant_(last_norm().weight, 0)

    def stages(self) -> list[nn.Sequential]:
        """The stages ``layer1..layerN`` in order; each is a sequence of blocks."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, in_chans, H, W) -> (B, num_features, H/32, W/32) (H/4 for CIFAR nets)."""
        x = self.forward_stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        if self.preact:
            x = self.relu(self.norm(x))
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, C, h, w) -> pooled (B, C) when ``pre_logits``, else logits (B, num_classes)."""
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
    if stem not in ("imagenet", "cifar"):
        raise ConfigError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
    if shortcut not in ("A", "B"):
        raise ConfigError(
            f"shortcut must be 'A' (zero padding) or 'B' (projection), got {shortcut!r}"
        )
    if num_classes < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    if in_chans < 1:
        raise ConfigError(f"in_chans must be at least 1, got {in_chans}")

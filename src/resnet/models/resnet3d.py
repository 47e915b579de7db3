"""ResNets for volumes (and signals): one N-d network where ``spatial_dims`` picks the layers.

The same network as ``resnet.py`` (He et al. 2015, arXiv 1512.03385) with every Conv2d,
BatchNorm2d and pooling layer replaced by its 1-d, 2-d or 3-d counterpart, as in MONAI's
``monai.networks.nets.ResNet``, whose argument names it keeps (``conv1_t_size``,
``conv1_t_stride``, ``no_max_pool``, ``widen_factor``). Small medical volumes such as MedMNIST3D
(28^3) keep their resolution through the stem: a stride-1 7^3 convolution, then a 3^3 max-pool.

    >>> model = create_model("resnet18_3d", num_classes=2, in_chans=1)
    >>> model(torch.zeros(2, 1, 28, 28, 28)).shape  # (B, C, D, H, W) -> (B, num_classes)
    torch.Size([2, 2])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from resnet.errors import ConfigError
from resnet.models.blocks import DropPath
from resnet.models.registry import register_model

__all__ = ["ResNetNd", "BasicBlockNd", "BottleneckNd", "ZeroPadShortcutNd", "resnet_nd"]

NormLayer = Callable[[int], nn.Module]
_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG_POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


class BasicBlockNd(nn.Module):
    """Two 3^d convolutions and the shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + x)``."""

    expansion: int = 1

    def __init__(
        self,
        spatial_dims: int,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        norm_layer: Optional[NormLayer] = None,
        residual: bool = True,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        conv = _CONV[spatial_dims]
        norm_layer = norm_layer or _BATCH_NORM[spatial_dims]
        self.conv1 = conv(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(planes, planes, 3, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample if residual else None
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out = self.drop_path(out) + identity
        return self.relu(out)

    def last_norm(self) -> nn.Module:
        return self.bn2


class BottleneckNd(nn.Module):
    """1^d reduce, 3^d (carrying the stride, "v1.5"), 1^d expand by 4, then the shortcut."""

    expansion: int = 4

    def __init__(
        self,
        spatial_dims: int,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        norm_layer: Optional[NormLayer] = None,
        residual: bool = True,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        conv = _CONV[spatial_dims]
        norm_layer = norm_layer or _BATCH_NORM[spatial_dims]
        self.conv1 = conv(inplanes, planes, 1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample if residual else None
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out = self.drop_path(out) + identity
        return self.relu(out)

    def last_norm(self) -> nn.Module:
        return self.bn3


class ZeroPadShortcutNd(nn.Module):
    """Shortcut option A (arXiv 1512.03385 §3.3) in 1, 2 or 3 dims: subsample, zero-pad channels."""

    def __init__(self, spatial_dims: int, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.stride = stride
        self.extra_channels = extra_channels
        # F.pad lists (left, right) pairs from the last dim backwards; channels come last here.
        self.padding: list[int] = [0, 0] * spatial_dims + [0, extra_channels]

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride
        if self.spatial_dims == 1:
            x = x[:, :, ::s]
        elif self.spatial_dims == 2:
            x = x[:, :, ::s, ::s]
        else:
            x = x[:, :, ::s, ::s, ::s]  # (B, C, D/s, H/s, W/s)
        return nn.functional.pad(x, self.padding)  # (B, C + extra, ...)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


BlockNd = Union[type[BasicBlockNd], type[BottleneckNd]]


class ResNetNd(nn.Module):
    """A ResNet over 1-d signals, 2-d images or 3-d volumes, input (B, in_chans, *spatial).

    Args:
        block: ``BasicBlockNd`` (ResNet-10/18/34) or ``BottleneckNd`` (ResNet-50).
        layers: blocks per stage, e.g. ``[2, 2, 2, 2]`` for ResNet-18.
        spatial_dims: 1, 2 or 3: picks ConvNd, BatchNormNd and the pooling layers.
        conv1_t_size, conv1_t_stride: kernel and stride of the stem convolution (an int or one
            value per spatial dim; MONAI's names).
        no_max_pool: skip the stem's max-pool (keeps resolution for very small inputs).
        shortcut: ``"A"`` zero padding or ``"B"`` 1^d projection where shapes change.
        widen_factor: scales every stage's width (64/128/256/512); 0.25 gives a tiny net.
        residual: False gives the plain network of the same depth.
        norm_layer: ``"batch"`` (default), ``"group"``, ``"none"`` or a constructor.
    """

    def __init__(
        self,
        block: BlockNd,
        layers: Sequence[int],
        num_classes: int = 2,
        in_chans: int = 3,
        *,
        spatial_dims: int = 3,
        conv1_t_size: Union[int, Sequence[int]] = 7,
        conv1_t_stride: Union[int, Sequence[int]] = 1,
        no_max_pool: bool = False,
        shortcut: str = "B",
        widen_factor: float = 1.0,
        residual: bool = True,
        zero_init_residual: bool = False,
        drop_path_rate: float = 0.0,
        norm_layer: Union[str, NormLayer, None] = None,
    ) -> None:
        super().__init__()
        _check_options(spatial_dims, shortcut, num_classes, in_chans, widen_factor, drop_path_rate)
        self.spatial_dims = spatial_dims
        self.in_chans = in_chans
        self.residual = residual
        self.shortcut = shortcut
        self.preact = False  # the interface of ResNet, which model summaries rely on
        self._norm_layer = _resolve_norm(norm_layer, spatial_dims)
        widths = [max(1, int(w * widen_factor)) for w in (64, 128, 256, 512)]
        kernel = _per_dim(conv1_t_size, spatial_dims, "conv1_t_size")
        stride = _per_dim(conv1_t_stride, spatial_dims, "conv1_t_stride")

        self.inplanes = widths[0]
        self.conv1 = _CONV[spatial_dims](
            in_chans,
            self.inplanes,
            kernel,
            stride=stride,
            padding=tuple(k // 2 for k in kernel),
            bias=False,
        )
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if no_max_pool else _MAX_POOL[spatial_dims](3, 2, 1)

        total = sum(layers)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.num_stages = len(layers)
        self.feature_info: list[dict[str, Any]] = []
        reduction = max(stride) * (1 if no_max_pool else 2)
        for index, (depth, width) in enumerate(zip(layers, widths)):
            stage_stride = 1 if index == 0 else 2
            stage_rates = rates[sum(layers[:index]) : sum(layers[: index + 1])]
            stage = self._make_layer(block, width, depth, stage_stride, stage_rates)
            setattr(self, f"layer{index + 1}", stage)
            reduction *= stage_stride
            self.feature_info.append(
                {"module": f"layer{index + 1}", "num_chs": self.inplanes, "reduction": reduction}
            )

        self.num_features = self.inplanes
        self.norm = nn.Identity()  # post-activation nets need no final norm
        self.avgpool = _AVG_POOL[spatial_dims](1)
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights(zero_init_residual and residual)

    def _make_layer(
        self, block: BlockNd, planes: int, blocks: int, stride: int, drop_rates: list[float]
    ) -> nn.Sequential:
        out_channels = planes * block.expansion
        downsample: Optional[nn.Module] = None
        if self.residual and (stride != 1 or self.inplanes != out_channels):
            if self.shortcut == "A":
                downsample = ZeroPadShortcutNd(
                    self.spatial_dims, stride, out_channels - self.inplanes
                )
            else:
                conv = _CONV[self.spatial_dims](
                    self.inplanes, out_channels, 1, stride=stride, bias=False
                )
                downsample = nn.Sequential(conv, self._norm_layer(out_channels))
        blocks_ = []
        for index in range(blocks):
            blocks_.append(
                block(
                    self.spatial_dims,
                    self.inplanes,
                    planes,
                    stride if index == 0 else 1,
                    downsample if index == 0 else None,
                    self._norm_layer,
                    residual=self.residual,
                    drop_path_rate=drop_rates[index],
                )
            )
            self.inplanes = out_channels
        return nn.Sequential(*blocks_)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlockNd, BottleneckNd)):
                    norm = module.last_norm()
                    if getattr(norm, "weight", None) is not None:
                        nn.init.constant_(norm.weight, 0)

    def stages(self) -> list[nn.Sequential]:
        """The stages ``layer1..layer4`` in order; each is a sequence of blocks."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, in_chans, *S) -> (B, num_features, *S / reduction)."""
        x = self.forward_stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

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
        self.fc = nn.Linear(self.num_features, num_classes, device=self.fc.weight.device)


def _check_options(
    spatial_dims: int,
    shortcut: str,
    num_classes: int,
    in_chans: int,
    widen_factor: float,
    drop_path_rate: float,
) -> None:
    if spatial_dims not in _CONV:
        raise ConfigError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
    if shortcut not in ("A", "B"):
        raise ConfigError(
            f"shortcut must be 'A' (zero padding) or 'B' (projection), got {shortcut!r}"
        )
    if num_classes < 1 or in_chans < 1:
        raise ConfigError(f"num_classes and in_chans must be >= 1, got {num_classes}, {in_chans}")
    if widen_factor <= 0:
        raise ConfigError(f"widen_factor must be positive, got {widen_factor}")
    if not 0.0 <= drop_path_rate < 1.0:
        raise ConfigError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")


def _per_dim(value: Union[int, Sequence[int]], spatial_dims: int, name: str) -> tuple[int, ...]:
    values = (value,) * spatial_dims if isinstance(value, int) else tuple(value)
    if len(values) != spatial_dims or any(int(v) < 1 for v in values):
        raise ConfigError(
            f"{name} must be a positive int or {spatial_dims} positive ints, got {value!r}"
        )
    return tuple(int(v) for v in values)


def _resolve_norm(norm_layer: Union[str, NormLayer, None], spatial_dims: int) -> NormLayer:
    if callable(norm_layer):
        return norm_layer
    if norm_layer in (None, "batch"):
        return _BATCH_NORM[spatial_dims]
    if norm_layer == "group":
        # 32 groups (Wu & He 2018) where the width allows, else one group per channel.
        return lambda channels: nn.GroupNorm(min(32, channels), channels)
    if norm_layer == "none":
        return nn.Identity
    raise ConfigError(f"unknown norm_layer {norm_layer!r}: choose batch, group or none")


def resnet_nd(block: BlockNd, layers: Sequence[int], **kwargs: Any) -> ResNetNd:
    """Build a ``ResNetNd`` from a block type, blocks per stage and ``ResNetNd``'s options."""
    return ResNetNd(block, layers, **kwargs)


@register_model(family="volume", default_input_size=28)
def resnet10_3d(**kwargs: Any) -> ResNetNd:
    """3D ResNet-10 (MONAI's smallest): one basic block per stage."""
    return resnet_nd(BasicBlockNd, [1, 1, 1, 1], **kwargs)


@register_model(family="volume", default_input_size=28)
def resnet18_3d(**kwargs: Any) -> ResNetNd:
    """3D ResNet-18: two basic blocks per stage."""
    return resnet_nd(BasicBlockNd, [2, 2, 2, 2], **kwargs)


@register_model(family="volume", default_input_size=28)
def resnet34_3d(**kwargs: Any) -> ResNetNd:
    """3D ResNet-34: 3/4/6/3 basic blocks."""
    return resnet_nd(BasicBlockNd, [3, 4, 6, 3], **kwargs)


@register_model(family="volume", default_input_size=28)
def resnet50_3d(**kwargs: Any) -> ResNetNd:
    """3D ResNet-50: 3/4/6/3 bottleneck blocks."""
    return resnet_nd(BottleneckNd, [3, 4, 6, 3], **kwargs)


@register_model(family="signal", default_input_size=256)
def resnet18_1d(**kwargs: Any) -> ResNetNd:
    """1D ResNet-18 for signals (B, C, L), e.g. ECGs: the 3D code with ``spatial_dims=1``."""
    return resnet_nd(BasicBlockNd, [2, 2, 2, 2], **{"spatial_dims": 1, **kwargs})

"""Residual blocks, from the explainer's first example to the paper's bottleneck.

Every block but the explainer's computes ``F(x)`` with its convolutions and, when ``residual`` is
true, adds the shortcut: ``y = relu(F(x) + shortcut(x))`` (He et al. 2015, arXiv 1512.03385). With
``residual=False`` the same modules and parameters form the *plain* counterpart: ``y = relu(F(x))``.
A plain block has no skip path, so it builds no projection shortcut either.

The keyword ``spatial_dims`` (default 2) builds the same blocks over 1-d signals or 3-d volumes:
it only picks ``nn.Conv1d/2d/3d`` and the default ``nn.BatchNorm1d/2d/3d``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from torch import Tensor, nn

from resnet.checks import whole_number
from resnet.errors import ConfigError
from resnet.models.blur_pool import anti_alias_pool
from resnet.models.layers import (
    SHORTCUT_PADS,
    DropPath,
    NormLayer,
    activation,
    batch_norm_nd,
    conv1x1,
    conv3x3,
    conv_nd,
)
from resnet.models.norm import NormOption, activation_after, resolve_norm_layer

__all__ = [
    "ResidualBlock",
    "BasicBlock",
    "Bottleneck",
    "PreActBasicBlock",
    "PreActBottleneck",
    "DropPath",
    "ZeroPadShortcut",
    "conv3x3",
    "conv1x1",
    "conv_nd",
    "batch_norm_nd",
    "NormLayer",
]

AttentionLayer = Callable[[int], nn.Module]  # channels -> SE/ECA module, see attention.py


class ResidualBlock(nn.Module):
    """The block as the concept is first shown: ``Y = relu(conv(relu(conv(X))) + X)``.

    Both convolutions keep the channel count and the spatial size, so the input can be added back
    unchanged: ``(1, 3, 64, 64) -> (1, 3, 64, 64)``.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        in_channels = whole_number("in_channels", in_channels)
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1)
        self.relu = nn.ReLU()

    def residual_branch(self, x: Tensor) -> Tensor:
        """``F(X)``: what the block learns on top of the identity."""
        return self.conv2(self.relu(self.conv1(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.residual_branch(x) + x)  # F(X) + X, the skip connection


def _check_plain_options(residual: bool, drop_path_rate: float) -> None:
    if not residual and drop_path_rate > 0:
        raise ConfigError(
            "drop_path_rate > 0 needs residual=True: a plain block has no skip path to fall back on"
        )


def _anti_alias(anti_alias: Optional[str], stride: int, channels: int, dims: int) -> nn.Module:
    """The low-pass subsampling that takes over a block's stride (``blur_pool.py``); the
    identity where the block does not subsample or is not anti-aliased."""
    if anti_alias is None or stride == 1:
        return nn.Identity()
    if stride != 2:
        raise ConfigError(f"anti_alias subsamples by 2, and this block has stride {stride}")
    return anti_alias_pool(anti_alias, channels, dims)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34, CIFAR ResNets), torchvision's layout and names."""

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: NormOption = None,
        residual: bool = True,
        drop_path_rate: float = 0.0,
        *,
        spatial_dims: int = 2,
        attn_layer: Optional[AttentionLayer] = None,
        act_layer: str = "relu",
        anti_alias: Optional[str] = None,
        relu_before_attn: bool = False,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ConfigError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise ConfigError("BasicBlock does not support dilation > 1")
        _check_plain_options(residual, drop_path_rate)
        norm_layer = resolve_norm_layer(norm_layer, spatial_dims)
        self.aa = _anti_alias(anti_alias, stride, planes, spatial_dims)
        conv1_stride = 1 if anti_alias is not None else stride
        self.conv1 = conv3x3(inplanes, planes, conv1_stride, spatial_dims=spatial_dims)
        self.bn1 = norm_layer(planes)
        # torchvision's name, whatever act_layer (a name in layers.ACTIVATIONS) makes it.
        self.relu = activation(act_layer)
        self.conv2 = conv3x3(planes, planes, spatial_dims=spatial_dims)
        self.bn2 = norm_layer(planes)
        # Channel attention (SE, ECA) rescales the branch before the addition, as in timm.
        self.se = attn_layer(planes) if attn_layer is not None else nn.Identity()
        # SENet's own SE-ResNet-18/34 (timm's legacy_seresnet18/34) activate before SE too.
        self.relu_before_attn = relu_before_attn
        self.downsample = downsample if residual else None
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.residual = residual
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.aa(out)  # subsamples here when anti-aliased, else the identity

        out = self.conv2(out)
        out = self.bn2(out)
        if self.relu_before_attn:
            out = self.relu(out)
        out = self.se(out)

        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out = self.drop_path(out) + identity
        return self.relu(out)

    def last_norm(self) -> nn.Module:
        """The norm layer that zero_init_residual zeroes, so the block starts as the identity."""
        return self.bn2


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (ResNet-50/101/152, ResNeXt, Wide ResNet).

    This is "ResNet v1.5" as in torchvision: the stride sits on the 3x3 convolution instead of
    the first 1x1 convolution of the original paper, which is slightly more accurate on ImageNet.
    ``stride_in_1x1=True`` puts it where the paper (and its Caffe models, SENet's among them) did.
    ``first_conv_ratio`` narrows the first 1x1's output below the 3x3's width (SENet-154: half).
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: NormOption = None,
        residual: bool = True,
        drop_path_rate: float = 0.0,
        *,
        spatial_dims: int = 2,
        attn_layer: Optional[AttentionLayer] = None,
        stride_in_1x1: bool = False,
        anti_alias: Optional[str] = None,
        first_conv_ratio: float = 1.0,
    ) -> None:
        super().__init__()
        _check_plain_options(residual, drop_path_rate)
        norm_layer = resolve_norm_layer(norm_layer, spatial_dims)
        width = int(planes * (base_width / 64.0)) * groups
        reduced = int(width * first_conv_ratio)  # the first 1x1's output
        if reduced < groups or reduced % groups:
            raise ConfigError(
                f"first_conv_ratio {first_conv_ratio} gives the first 1x1 {reduced} channels, "
                f"which the 3x3's {groups} groups do not divide: pick a ratio that keeps it a "
                "multiple of groups"
            )
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.aa = _anti_alias(anti_alias, stride, width, spatial_dims)
        if anti_alias is not None:
            stride_3x3 = 1
        self.conv1 = conv1x1(inplanes, reduced, stride_1x1, spatial_dims=spatial_dims)
        self.bn1 = norm_layer(reduced)
        conv = conv_nd(spatial_dims)
        self.conv2 = conv(reduced, width, 3, stride_3x3, dilation, dilation, groups, bias=False)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion, spatial_dims=spatial_dims)
        self.bn3 = norm_layer(planes * self.expansion)
        self.se = attn_layer(planes * self.expansion) if attn_layer is not None else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample if residual else None
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.residual = residual
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x

        out = self.relu(self.bn1(self.conv1(x)))
        out = self.aa(self.relu(self.bn2(self.conv2(out))))  # aa: the identity unless anti-aliased
        out = self.se(self.bn3(self.conv3(out)))

        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out = self.drop_path(out) + identity
        return self.relu(out)

    def last_norm(self) -> nn.Module:
        return self.bn3


class PreActBasicBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016, arXiv 1603.05027): BN-ReLU before each conv.

    Nothing follows the addition, so the shortcut is a clean identity from block to block: the
    signal and its gradient pass through the whole network unchanged along the skip path.
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: NormOption = None,
        residual: bool = True,
        drop_path_rate: float = 0.0,
        *,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64 or dilation != 1:
            raise ConfigError("PreActBasicBlock only supports groups=1, base_width=64, dilation=1")
        _check_plain_options(residual, drop_path_rate)
        norm_layer = resolve_norm_layer(norm_layer, spatial_dims)
        self.bn1 = norm_layer(inplanes)
        # The pre-activation of x must not overwrite x; none after a norm that activates.
        self.relu = activation_after(norm_layer, inplace=False)
        self.conv1 = conv3x3(inplanes, planes, stride, spatial_dims=spatial_dims)
        self.bn2 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, spatial_dims=spatial_dims)
        self.downsample = downsample if residual else None
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.residual = residual
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        preact = self.relu(self.bn1(x))
        # A projection shortcut sees the pre-activated input, as in the paper's Figure 4(e).
        identity = x
        if self.downsample is not None:
            identity = self.downsample(preact)
        out = self.conv1(preact)
        out = self.conv2(self.relu(self.bn2(out)))
        if self.residual:
            out = self.drop_path(out) + identity
        return out

    def last_norm(self) -> Optional[nn.Module]:
        return None  # no norm sits at the end of a pre-activation branch


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (arXiv 1603.05027), stride on the 3x3 convolution."""

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: NormOption = None,
        residual: bool = True,
        drop_path_rate: float = 0.0,
        *,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        _check_plain_options(residual, drop_path_rate)
        norm_layer = resolve_norm_layer(norm_layer, spatial_dims)
        width = int(planes * (base_width / 64.0)) * groups
        self.bn1 = norm_layer(inplanes)
        self.relu = activation_after(norm_layer, inplace=False)
        self.conv1 = conv1x1(inplanes, width, spatial_dims=spatial_dims)
        self.bn2 = norm_layer(width)
        self.conv2 = conv_nd(spatial_dims)(
            width, width, 3, stride, padding=dilation, groups=groups, dilation=dilation, bias=False
        )
        self.bn3 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion, spatial_dims=spatial_dims)
        self.downsample = downsample if residual else None
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.residual = residual
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        preact = self.relu(self.bn1(x))
        identity = x
        if self.downsample is not None:
            identity = self.downsample(preact)
        out = self.conv1(preact)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.residual:
            out = self.drop_path(out) + identity
        return out

    def last_norm(self) -> Optional[nn.Module]:
        return None


class ZeroPadShortcut(nn.Module):
    """Option A shortcut (arXiv 1512.03385 §3.3): subsample by the stride, zero-pad new channels.

    It has no parameters, so a residual net with option A has exactly as many parameters as its
    plain counterpart, which is what makes the paper's plain-vs-residual comparison fair.
    ``pad="both"`` puts half of the zero channels before the old ones and half after, as the
    public CIFAR reproduction does (so its checkpoints load unchanged); ``"after"`` appends them.
    """

    def __init__(
        self, stride: int, extra_channels: int, *, spatial_dims: int = 2, pad: str = "both"
    ) -> None:
        super().__init__()
        conv_nd(spatial_dims)  # checks spatial_dims
        if pad not in SHORTCUT_PADS:
            raise ConfigError(f"shortcut_pad must be 'both' or 'after', got {pad!r}")
        self.spatial_dims = spatial_dims
        self.stride = stride
        self.extra_channels = extra_channels
        self.pad = pad
        before = extra_channels // 2 if pad == "both" else 0
        # F.pad lists (left, right) pairs from the last dim backwards; channels come last here.
        # A list of ints built once keeps forward scriptable for every spatial_dims.
        self.padding = [0, 0] * spatial_dims + [before, extra_channels - before]

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride
        if self.spatial_dims == 1:
            x = x[:, :, ::s]  # (B, C, L/s)
        elif self.spatial_dims == 2:
            x = x[:, :, ::s, ::s]  # (B, C, H/s, W/s)
        else:
            x = x[:, :, ::s, ::s, ::s]  # (B, C, D/s, H/s, W/s)
        return nn.functional.pad(x, self.padding)  # (B, C+extra, ...)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}, pad={self.pad!r}"

"""The ResNet network: a stem, stages of blocks, global pooling and a linear classifier.

One class serves the ImageNet family (He et al. 2015, arXiv 1512.03385, Table 1; torchvision's
module names so its weights load unchanged), the CIFAR family (§4.2: a 3x3 stem and three stages
of 16/32/64 channels), the pre-activation family (arXiv 1603.05027), and timm's variants as
options rather than copies: deep stems and average-pool shortcuts (ResNet-C/D, arXiv 1812.01187),
channel attention (SE, arXiv 1709.01507; ECA, arXiv 1910.03151), ResNet-RS's conv stem pool and
SENet-154's narrower first 1x1 and 3x3 projections.
With ``spatial_dims`` 1 or 3 the same network runs over signals or volumes, its stem set by MONAI's
options (``conv1_t_size``, ``conv1_t_stride``, ``no_max_pool``). The builders live in
``imagenet.py``, ``cifar.py``, ``resnet3d.py``, ``resnet_d.py`` and ``senet.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from resnet.checks import whole_number
from resnet.errors import ConfigError
from resnet.models.attention import attention_layer
from resnet.models.attention_pool import AttentionPool2d
from resnet.models.blocks import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    ZeroPadShortcut,
)
from resnet.models.layers import SHORTCUT_PADS, avg_pool_nd, conv1x1, conv_nd
from resnet.models.norm import NormOption, activation_after, resolve_norm_layer
from resnet.models.resnet_options import (
    PREACT_BLOCKS,
    block_options,
    check_choice,
    check_stages,
    per_dim,
)
from resnet.models.std_conv import standardize_convs
from resnet.models.stems import STEM_POOLS, make_stem_conv, make_stem_pool, stem_preset

__all__ = ["ResNet", "BlockType", "STEM_OUTS", "DOWNSAMPLES", "GLOBAL_POOLS"]

BlockType = Union[
    type[BasicBlock], type[Bottleneck], type[PreActBasicBlock], type[PreActBottleneck]
]
# What follows the stem convolution: BN-ReLU (post-activation nets), nothing (pre-activation nets:
# their first block normalises its input itself), or a bare ReLU (this package's pre-activation
# CIFAR nets before they followed the paper; kept so their checkpoints rebuild).
STEM_OUTS = ("norm_relu", "none", "relu")
# The projection shortcut (option B): a strided 1x1 conv (ResNet-B), or a 2x2 average pool then a
# 1x1 conv (ResNet-D, arXiv 1812.01187), which sees every input pixel instead of one in four.
DOWNSAMPLES = ("conv", "avg", "conv3x3")
GLOBAL_POOLS = ("avg", "attention")
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
        stem: ``"imagenet"`` (7x7/2 conv), ``"cifar"`` (one 3x3 conv), ``"deep"`` or
            ``"deep_tiered"`` (three 3x3 convs), see ``stems.py``.
        stem_pool: one of ``STEM_POOLS`` (``stems.py``): ``"max"``, ``"max_zero_pad"`` (BiT),
            ``"max_ceil"`` (Caffe's), ``"conv"`` (ResNet-RS), ``"avg"`` and ``"max_blur"``
            (anti-aliased nets) or ``"none"``; None keeps ``stem``'s.
        stem_out: what follows the stem conv, one of ``STEM_OUTS``; None: ``"none"`` for
            pre-activation blocks, ``"norm_relu"`` otherwise.
        conv1_t_size, conv1_t_stride, no_max_pool: override the stem's kernel and stride (an int or
            one per spatial dim) and drop its max-pool (MONAI's names; None keeps ``stem``'s).
        stem_width: channels out of the stem.
        planes: base width of each stage (a bottleneck outputs ``4 * planes``).
        strides: stride of the first block of each stage.
        shortcut: ``"A"`` zero-padding or ``"B"`` projection, where shapes change.
        shortcut_pad: where option A puts its zero channels, ``"both"`` sides or ``"after"``.
        downsample: option B's projection, ``"conv"`` (strided 1x1), ``"avg"`` (pool, 1x1) or
            ``"conv3x3"`` (a strided 3x3 where the stage subsamples, a 1x1 elsewhere: SENet-154).
        bias_downsample: give the projection conv a bias (MONAI's default for its 3D nets).
        attn_layer, attn_ratio: channel attention in every block, ``"se"``, ``"se_legacy"``
            (SENet's own sizing) or ``"eca"`` (None:
            none), and SE's squeeze ratio (1/16 by default).
        residual: add the shortcut (a ResNet) or not (the plain network of the same depth).
        zero_init_residual: start each residual branch's last BN at zero, so every block starts
            as the identity (Goyal et al. 2017). Plain nets ignore it: it would cut their only path.
        groups, width_per_group: ResNeXt cardinality and bottleneck width.
        first_conv_ratio: a bottleneck's first 1x1 outputs this fraction of its 3x3's width
            (SENet-154's: 0.5, so its grouped 3x3 widens as it convolves); 1 for the rest.
        drop_path_rate: stochastic depth rate of the last block, rising linearly from 0.
        norm_layer: ``"batch"`` (default), ``"group"``, ``"frozen_batch"``, ``"none"`` or a
            constructor taking the channel count; resolved here, once, for every layer.
        weight_standardization: every convolution standardises its filters before it convolves
            (``std_conv.py``; BiT's nets, with group norm).
        stride_in_1x1: bottlenecks stride their first 1x1 convolution, as the paper's original
            ResNet-50/101/152 ("v1") and SENet's nets do, instead of the 3x3 ("v1.5", the default).
        anti_alias: ``"avg"`` or ``"blur"``: each block's strided convolution runs at stride 1
            and a low-pass filter subsamples after it (``blur_pool.py``, arXiv 1904.11486);
            None: none. The stem pool is ``stem_pool``'s to set (``"avg"``, ``"max_blur"``).
        relu_before_attn: basic blocks activate their second conv before the attention, as
            SENet's own SE-ResNet-18/34 (timm's ``legacy_seresnet18/34``) do.
        project_first_shortcut: every stage's first block projects its shortcut (option B's
            1x1 conv) even where the identity fits, as PaddleClas's ResNet-18/34 do; the
            attribute says whether that changed the net (a bottleneck net projects there anyway).
        input_norm: a BatchNorm without scale and shift normalises the input image before the
            stem (``input_bn``), as MXNet Gluon's ResNet v2 does (its statistics are learned
            with the net; the ONNX model zoo's ``resnet*-v2-7.onnx``).
        global_pool: ``"avg"`` (the paper's) or ``"attention"``: CLIP's attention pooling
            (``attention_pool.py``), whose output projection is ``fc``; ``attention_grid`` is
            the side of the map its positions were learned on (7: a 224 input).
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
        stem_pool: Optional[str] = None,
        stem_out: Optional[str] = None,
        conv1_t_size: Union[int, Sequence[int], None] = None,
        conv1_t_stride: Union[int, Sequence[int], None] = None,
        no_max_pool: Optional[bool] = None,
        stem_width: int = 64,
        planes: Sequence[int] = (64, 128, 256, 512),
        strides: Sequence[int] = (1, 2, 2, 2),
        shortcut: str = "B",
        shortcut_pad: str = "both",
        downsample: str = "conv",
        bias_downsample: bool = False,
        attn_layer: Optional[str] = None,
        attn_ratio: Optional[float] = None,
        residual: bool = True,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        first_conv_ratio: float = 1.0,
        drop_path_rate: float = 0.0,
        norm_layer: NormOption = None,
        weight_standardization: bool = False,
        stride_in_1x1: bool = False,
        anti_alias: Optional[str] = None,
        relu_before_attn: bool = False,
        project_first_shortcut: bool = False,
        input_norm: bool = False,
        global_pool: str = "avg",
        attention_grid: int = 7,
    ) -> None:
        super().__init__()
        check_stages(layers, planes, strides, shortcut, num_classes, in_chans)
        check_choice("shortcut_pad", shortcut_pad, SHORTCUT_PADS)
        check_choice("downsample", downsample, DOWNSAMPLES)
        if not 0.0 <= drop_path_rate < 1.0:
            raise ConfigError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        norm_layer = resolve_norm_layer(norm_layer, spatial_dims)
        self._norm_layer = norm_layer
        self._attn_layer = attention_layer(attn_layer, attn_ratio, spatial_dims)
        options = block_options(
            block,
            norm_layer,
            attn_layer=attn_layer,
            stride_in_1x1=stride_in_1x1,
            relu_before_attn=relu_before_attn,
            first_conv_ratio=first_conv_ratio,
            project_first_shortcut=project_first_shortcut,
            anti_alias=anti_alias,
            residual_projection=residual and shortcut == "B",
        )
        self.stride_in_1x1 = options.stride_in_1x1
        self.relu_before_attn = options.relu_before_attn
        self.first_conv_ratio = options.first_conv_ratio
        self._project_first = options.project_first_shortcut
        self.project_first_shortcut = False  # True once a stage projects only because of it
        self.anti_alias = options.anti_alias
        self.input_norm = input_norm is True
        norm_nd = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[spatial_dims - 1]
        self.input_bn = norm_nd(in_chans, affine=False) if self.input_norm else nn.Identity()
        self.spatial_dims = spatial_dims
        self.in_chans = in_chans
        self.preact = block in PREACT_BLOCKS
        self.residual = residual
        self.shortcut = shortcut
        self.downsample_type = downsample
        self.groups = groups
        self.base_width = width_per_group
        self.inplanes = stem_width
        self.dilation = 1
        # The options a checkpoint must record to rebuild this net (None: no effect on it).
        has_a = residual and shortcut == "A"
        self.shortcut_pad = shortcut_pad if has_a else None
        self.bias_downsample = bool(bias_downsample) if residual and shortcut == "B" else None
        self.stem_out = stem_out or ("none" if self.preact else "norm_relu")
        check_choice("stem_out", self.stem_out, STEM_OUTS)

        stem_stride = self._make_stem(
            stem, stem_pool, conv1_t_size, conv1_t_stride, no_max_pool, in_chans, stem_width
        )

        total_blocks = sum(layers)
        drop_rates = [drop_path_rate * i / max(total_blocks - 1, 1) for i in range(total_blocks)]
        self.num_stages = len(layers)
        self.feature_info: list[dict[str, Any]] = []
        reduction = stem_stride
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
        final_relu = activation_after(norm_layer, inplace=True)
        self.final_relu = final_relu if self.preact else nn.Identity()
        self.global_pool = _make_global_pool(
            global_pool, self.num_features, spatial_dims, attention_grid
        )
        self.fc = nn.Linear(self.num_features, num_classes)

        self.weight_standardization = weight_standardization is True  # as stride_in_1x1
        if self.weight_standardization:
            standardize_convs(self)
        self._init_weights(zero_init_residual and residual)

    def _make_stem(
        self,
        stem: str,
        stem_pool: Optional[str],
        conv1_t_size: Union[int, Sequence[int], None],
        conv1_t_stride: Union[int, Sequence[int], None],
        no_max_pool: Optional[bool],
        in_chans: int,
        width: int,
    ) -> int:
        """Build ``conv1``, ``bn1``, ``relu``, ``maxpool``; return the stem's total stride."""
        dims = self.spatial_dims
        preset_kernel, preset_stride, preset_pool = stem_preset(stem)
        if conv1_t_size is not None and stem.startswith("deep"):
            raise ConfigError(f"conv1_t_size does not apply to the {stem!r} stem (3x3 convs)")
        kernel = per_dim(conv1_t_size, preset_kernel, dims, "conv1_t_size")
        stride = per_dim(conv1_t_stride, preset_stride, dims, "conv1_t_stride")
        if no_max_pool is not None:
            if stem_pool is not None and (stem_pool == "none") != bool(no_max_pool):
                raise ConfigError(
                    f"no_max_pool={no_max_pool} contradicts stem_pool={stem_pool!r} (some models "
                    "set it themselves); pass stem_pool alone, e.g. stem_pool='none'"
                )
            stem_pool = "none" if no_max_pool else (stem_pool or "max")
        pool = stem_pool or preset_pool
        check_choice("stem_pool", pool, STEM_POOLS)
        self.conv1 = make_stem_conv(stem, in_chans, width, kernel, stride, self._norm_layer, dims)
        has_norm = self.stem_out == "norm_relu"
        self.bn1 = self._norm_layer(width) if has_norm else nn.Identity()
        self.relu = nn.ReLU(inplace=True) if self.stem_out != "none" else nn.Identity()
        self.maxpool = make_stem_pool(pool, width, self._norm_layer, dims)
        return max(stride) * (1 if pool == "none" else 2)

    def _make_shortcut(self, out_channels: int, stride: int) -> Optional[nn.Module]:
        """Option A or B where a stage changes the shape; None where the identity fits."""
        dims = self.spatial_dims
        if not self.residual or (stride == 1 and self.inplanes == out_channels):
            if not self._project_first:
                return None
            self.project_first_shortcut = True
        if self.shortcut == "A":
            extra = out_channels - self.inplanes
            return ZeroPadShortcut(stride, extra, spatial_dims=dims, pad=self.shortcut_pad)
        layers: list[nn.Module] = []
        if self.downsample_type == "avg":
            pool = avg_pool_nd(dims)(2, stride, ceil_mode=True, count_include_pad=False)
            layers.append(pool if stride > 1 else nn.Identity())
            stride = 1
        bias = bool(self.bias_downsample)
        if self.downsample_type == "conv3x3" and stride > 1:
            conv = conv_nd(dims)(self.inplanes, out_channels, 3, stride, 1, bias=bias)
        else:
            conv = conv1x1(self.inplanes, out_channels, stride, spatial_dims=dims, bias=bias)
        layers.append(conv)
        # A pre-activation block feeds the projection its normalised input: no norm after it.
        if not self.preact:
            layers.append(self._norm_layer(out_channels))
        return nn.Sequential(*layers)

    def _make_layer(
        self, block: BlockType, planes: int, blocks: int, stride: int, drop_rates: list[float]
    ) -> nn.Sequential:
        out_channels = planes * block.expansion
        downsample = self._make_shortcut(out_channels, stride)
        options: dict[str, Any] = {"stride_in_1x1": True} if self.stride_in_1x1 else {}
        if self.anti_alias is not None:
            options["anti_alias"] = self.anti_alias
        if self.relu_before_attn:
            options["relu_before_attn"] = True
        if self.first_conv_ratio != 1.0:
            options["first_conv_ratio"] = self.first_conv_ratio
        if self._attn_layer is not None:
            options["attn_layer"] = self._attn_layer
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
                    spatial_dims=self.spatial_dims,
                    **options,
                )
            )
            self.inplanes = out_channels
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        if any(p.is_meta for p in self.parameters()):  # shapes only: nothing to initialise
            return
        for module in self.modules():
            if isinstance(module, nn.modules.conv._ConvNd):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, _NORMS) and module.weight is not None:  # not input_bn
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
        return self.maxpool(self.relu(self.bn1(self.conv1(self.input_bn(x)))))

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, in_chans, *S) -> (B, num_features, *S / reduction): H/32, W/32 for ImageNet nets."""
        x = self.forward_stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return self.final_relu(self.norm(x))  # identities unless pre-activation

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, C, *s) -> pooled (B, C) when ``pre_logits``, else logits (B, num_classes)."""
        x = torch.flatten(self.global_pool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one of ``num_classes`` outputs."""
        num_classes = whole_number("num_classes", num_classes)
        device = self.fc.weight.device
        self.fc = nn.Linear(self.num_features, num_classes, device=device)


def _make_global_pool(kind: str, channels: int, spatial_dims: int, grid: int) -> nn.Module:
    check_choice("global_pool", kind, GLOBAL_POOLS)
    if kind == "avg":
        return _AVG_POOL[spatial_dims]((1,) * spatial_dims)
    if spatial_dims != 2:
        raise ConfigError(
            f"global_pool='attention' pools 2D maps; a {spatial_dims}D net uses 'avg'"
        )
    return AttentionPool2d(channels, whole_number("attention_grid", grid))

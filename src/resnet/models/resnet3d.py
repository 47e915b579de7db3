"""ResNets for volumes (and signals): ``resnet.py``'s network with ``spatial_dims`` 3 (or 1).

The same ``ResNet`` and blocks (He et al. 2015, arXiv 1512.03385), with ``spatial_dims`` picking
1-d, 2-d or 3-d convolutions, norms and pooling, as in MONAI's ``monai.networks.nets.ResNet``,
whose argument names and defaults this file keeps (``conv1_t_size``, ``conv1_t_stride``,
``no_max_pool``, ``widen_factor``, ``shortcut_type``, ``bias_downsample``): MONAI's ``resnet10``
.. ``resnet152`` state_dicts load into ``resnet10_3d`` .. ``resnet152_3d`` strictly, and
MedicalNet's backbones (Chen et al. 2019, arXiv 1904.00625) through ``load_weights``. Small
medical volumes such as MedMNIST3D (28^3) keep their resolution through the stem: a stride-1 7^3
convolution, then a 3^3 max-pool.

    >>> model = create_model("resnet18_3d", num_classes=2, in_chans=1)
    >>> model(torch.zeros(2, 1, 28, 28, 28)).shape  # (B, C, D, H, W) -> (B, num_classes)
    torch.Size([2, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

from resnet.errors import ConfigError
from resnet.models.blocks import BasicBlock, Bottleneck
from resnet.models.norm import NormOption
from resnet.models.registry import register_model
from resnet.models.resnet import BlockType, ResNet

__all__ = ["ResNetNd", "resnet_nd"]


class ResNetNd(ResNet):
    """``ResNet`` with MONAI's options and defaults, input (B, in_chans, *spatial).

    Args:
        block: ``BasicBlock`` (ResNet-10/18/34) or ``Bottleneck`` (ResNet-50).
        layers: blocks per stage, e.g. ``[2, 2, 2, 2]`` for ResNet-18.
        spatial_dims: 1, 2 or 3: picks ConvNd, BatchNormNd and the pooling layers.
        conv1_t_size, conv1_t_stride: kernel and stride of the stem convolution (an int or one
            value per spatial dim). The stride defaults to 1 to keep small volumes' resolution.
        no_max_pool: skip the stem's max-pool (keeps resolution for very small inputs).
        shortcut: ``"A"`` zero padding or ``"B"`` 1^d projection where shapes change
            (``shortcut_type`` is MONAI's name for it).
        shortcut_pad: option A's zero channels go ``"after"`` the old ones, as in MONAI.
        bias_downsample: a bias on option B's projection conv, True as in MONAI (MedicalNet's
            ResNet-10/50/101/152 files were saved without it: pass False for them).
        widen_factor: scales every stage's width (64/128/256/512); 0.25 gives a tiny net.
        residual: False gives the plain network of the same depth.
        norm_layer: ``"batch"`` (default), ``"group"``, ``"none"`` or a constructor.
    """

    def __init__(
        self,
        block: BlockType,
        layers: Sequence[int],
        num_classes: int = 2,
        in_chans: int = 3,
        *,
        spatial_dims: int = 3,
        conv1_t_size: Union[int, Sequence[int]] = 7,
        conv1_t_stride: Union[int, Sequence[int]] = 1,
        no_max_pool: bool = False,
        shortcut: Optional[str] = None,
        shortcut_type: Optional[str] = None,
        shortcut_pad: str = "after",
        bias_downsample: bool = True,
        widen_factor: float = 1.0,
        residual: bool = True,
        zero_init_residual: bool = False,
        drop_path_rate: float = 0.0,
        norm_layer: NormOption = None,
    ) -> None:
        if shortcut and shortcut_type and shortcut != shortcut_type:
            raise ConfigError(f"shortcut={shortcut!r} contradicts shortcut_type={shortcut_type!r}")
        if widen_factor <= 0:
            raise ConfigError(f"widen_factor must be positive, got {widen_factor}")
        widths = [max(1, int(w * widen_factor)) for w in (64, 128, 256, 512)]
        super().__init__(
            block,
            layers,
            num_classes,
            in_chans,
            spatial_dims=spatial_dims,
            conv1_t_size=conv1_t_size,
            conv1_t_stride=conv1_t_stride,
            no_max_pool=no_max_pool,
            stem_width=widths[0],
            planes=widths,
            shortcut=shortcut or shortcut_type or "B",
            shortcut_pad=shortcut_pad,
            bias_downsample=bias_downsample,
            residual=residual,
            zero_init_residual=zero_init_residual,
            drop_path_rate=drop_path_rate,
            norm_layer=norm_layer,
        )


def resnet_nd(block: BlockType, layers: Sequence[int], **kwargs: Any) -> ResNetNd:
    """Build a ``ResNetNd`` from a block type, blocks per stage and ``ResNetNd``'s options."""
    return ResNetNd(block, layers, **kwargs)


@register_model(family="volume", default_input_size=28)
def resnet10_3d(**kwargs: Any) -> ResNetNd:
    """3D ResNet-10 (MONAI's smallest): one basic block per stage."""
    return resnet_nd(BasicBlock, [1, 1, 1, 1], **kwargs)


@register_model(family="volume", default_input_size=28)
def resnet18_3d(**kwargs: Any) -> ResNetNd:
    """3D ResNet-18: two basic blocks per stage."""
    return resnet_nd(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model(family="volume", default_input_size=28)
def resnet34_3d(**kwargs: Any) -> ResNetNd:
    """3D ResNet-34: 3/4/6/3 basic blocks."""
    return resnet_nd(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model(family="volume", default_input_size=28)
def resnet50_3d(**kwargs: Any) -> ResNetNd:
    """3D ResNet-50: 3/4/6/3 bottleneck blocks."""
    return resnet_nd(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model(family="volume", default_input_size=28)
def resnet101_3d(**kwargs: Any) -> ResNetNd:
    """3D ResNet-101: 3/4/23/3 bottleneck blocks."""
    return resnet_nd(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model(family="volume", default_input_size=28)
def resnet152_3d(**kwargs: Any) -> ResNetNd:
    """3D ResNet-152: 3/8/36/3 bottleneck blocks."""
    return resnet_nd(Bottleneck, [3, 8, 36, 3], **kwargs)


@register_model(family="signal", default_input_size=256)
def resnet18_1d(**kwargs: Any) -> ResNetNd:
    """1D ResNet-18 for signals (B, C, L), e.g. ECGs: the 3D code with ``spatial_dims=1``."""
    return resnet_nd(BasicBlock, [2, 2, 2, 2], **{"spatial_dims": 1, **kwargs})

"""ImageNet ResNets (arXiv 1512.03385 Table 1), ResNeXt, Wide ResNet, the widened ResNet-50s of
SimCLR and SwAV, and pre-activation ResNets.

The first ten builders match torchvision's module names and shapes (and timm's, for the same
names), so torchvision and timm weight files load into them with ``strict=True``. The
pre-activation nets (arXiv 1603.05027) have a bare 7x7 conv and max-pool as their stem: the first
block normalises its input itself, and a final BN-ReLU precedes the pooling. MXNet Gluon's v2
(``gluon_resnet*_v2``: its model zoo's ``resnet*_v2``, the ONNX model zoo's ``resnet*-v2-7``) are
the same nets with a BatchNorm of the input image before the stem and BN-ReLU after its conv.
"""

from __future__ import annotations

from typing import Any

from resnet.models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from resnet.models.registry import register_model
from resnet.models.resnet import BlockType, ResNet

__all__ = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "resnet50w2",
    "resnet50w4",
    "resnet50w5",
    "preact_resnet18",
    "preact_resnet34",
    "preact_resnet50",
    "preact_resnet101",
    "preact_resnet152",
    "gluon_resnet18_v2",
    "gluon_resnet34_v2",
    "gluon_resnet50_v2",
    "gluon_resnet101_v2",
    "gluon_resnet152_v2",
    "resnext101_32x48d",
]


# The builders whose module names and shapes equal torchvision's (their weights load strictly).
TORCHVISION_NAMES = tuple(__all__[:10])


def _resnet(block: BlockType, layers: list[int], **kwargs: Any) -> ResNet:
    return ResNet(block, layers, **kwargs)


@register_model
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2], 11.7M parameters."""
    return _resnet(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3], 21.8M parameters."""
    return _resnet(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 (v1.5): bottlenecks [3, 4, 6, 3], 25.6M parameters."""
    return _resnet(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model
def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101 (v1.5): bottlenecks [3, 4, 23, 3], 44.5M parameters."""
    return _resnet(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model
def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152 (v1.5): bottlenecks [3, 8, 36, 3], 60.2M parameters."""
    return _resnet(Bottleneck, [3, 8, 36, 3], **kwargs)


@register_model
def resnext50_32x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-50 32x4d (Xie et al. 2017): 32 groups of width 4 in each bottleneck."""
    return _resnet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4, **kwargs)


@register_model
def resnext101_32x8d(**kwargs: Any) -> ResNet:
    """ResNeXt-101 32x8d."""
    return _resnet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=8, **kwargs)


@register_model
def resnext101_64x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-101 64x4d."""
    return _resnet(Bottleneck, [3, 4, 23, 3], groups=64, width_per_group=4, **kwargs)


@register_model
def wide_resnet50_2(**kwargs: Any) -> ResNet:
    """Wide ResNet-50-2: bottlenecks twice as wide inside (the 3x3 conv), same outputs."""
    return _resnet(Bottleneck, [3, 4, 6, 3], width_per_group=128, **kwargs)


@register_model
def wide_resnet101_2(**kwargs: Any) -> ResNet:
    """Wide ResNet-101-2."""
    return _resnet(Bottleneck, [3, 4, 23, 3], width_per_group=128, **kwargs)


def _widened_resnet50(widen: int, **kwargs: Any) -> ResNet:
    # Every width times ``widen``: the stem's 64 channels, each stage's bottleneck inside and its
    # output (Wide ResNet-50-2 above widens only the inside).
    planes = tuple(64 * widen * 2**stage for stage in range(4))
    return _resnet(Bottleneck, [3, 4, 6, 3], stem_width=64 * widen, planes=planes, **kwargs)


@register_model
def resnet50w2(**kwargs: Any) -> ResNet:
    """ResNet-50 (2x) of SimCLR (arXiv 2002.05709) and SwAV's RN50-w2 (arXiv 2006.09882): every
    channel count doubled, 94M parameters without the classifier, torchvision's module names."""
    return _widened_resnet50(2, **kwargs)


@register_model
def resnet50w4(**kwargs: Any) -> ResNet:
    """ResNet-50 (4x) of SimCLR and SwAV's RN50-w4: every channel count times 4, 375M parameters
    without the classifier."""
    return _widened_resnet50(4, **kwargs)


@register_model
def resnet50w5(**kwargs: Any) -> ResNet:
    """SwAV's RN50-w5: every channel count times 5, 586M parameters without the classifier."""
    return _widened_resnet50(5, **kwargs)


@register_model
def preact_resnet18(**kwargs: Any) -> ResNet:
    """Pre-activation ResNet-18 (arXiv 1603.05027)."""
    return _resnet(PreActBasicBlock, [2, 2, 2, 2], **kwargs)


@register_model
def preact_resnet34(**kwargs: Any) -> ResNet:
    """Pre-activation ResNet-34."""
    return _resnet(PreActBasicBlock, [3, 4, 6, 3], **kwargs)


@register_model
def preact_resnet50(**kwargs: Any) -> ResNet:
    """Pre-activation ResNet-50."""
    return _resnet(PreActBottleneck, [3, 4, 6, 3], **kwargs)


@register_model
def preact_resnet101(**kwargs: Any) -> ResNet:
    """Pre-activation ResNet-101."""
    return _resnet(PreActBottleneck, [3, 4, 23, 3], **kwargs)


@register_model
def preact_resnet152(**kwargs: Any) -> ResNet:
    """Pre-activation ResNet-152."""
    return _resnet(PreActBottleneck, [3, 8, 36, 3], **kwargs)


def _gluon_v2(block: BlockType, layers: list[int], **kwargs: Any) -> ResNet:
    return _resnet(block, layers, **{"input_norm": True, "stem_out": "norm_relu", **kwargs})


@register_model
def gluon_resnet18_v2(**kwargs: Any) -> ResNet:
    """MXNet Gluon's ResNet-18 v2: pre-activation, the input batch-normalised, a BN-ReLU stem."""
    return _gluon_v2(PreActBasicBlock, [2, 2, 2, 2], **kwargs)


@register_model
def gluon_resnet34_v2(**kwargs: Any) -> ResNet:
    """MXNet Gluon's ResNet-34 v2."""
    return _gluon_v2(PreActBasicBlock, [3, 4, 6, 3], **kwargs)


@register_model
def gluon_resnet50_v2(**kwargs: Any) -> ResNet:
    """MXNet Gluon's ResNet-50 v2 (the ONNX model zoo's resnet50-v2-7.onnx)."""
    return _gluon_v2(PreActBottleneck, [3, 4, 6, 3], **kwargs)


@register_model
def gluon_resnet101_v2(**kwargs: Any) -> ResNet:
    """MXNet Gluon's ResNet-101 v2."""
    return _gluon_v2(PreActBottleneck, [3, 4, 23, 3], **kwargs)


@register_model
def gluon_resnet152_v2(**kwargs: Any) -> ResNet:
    """MXNet Gluon's ResNet-152 v2."""
    return _gluon_v2(PreActBottleneck, [3, 8, 36, 3], **kwargs)


@register_model
def resnext101_32x48d(**kwargs: Any) -> ResNet:
    """ResNeXt-101 32x48d of "Exploring the Limits of Weakly Supervised Pretraining" (Mahajan et
    al. 2018, arXiv 1805.00932): torch.hub's ``facebookresearch/WSL-Images``
    ``resnext101_32x48d_wsl``, torchvision's code and names, 828.4M parameters."""
    return _resnet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=48, **kwargs)

"""torchvision's video ResNets (Tran et al. 2018, "A Closer Look at Spatiotemporal Convolutions
for Action Recognition", arXiv 1711.11248): one ResNet-18 for clips (B, 3, T, H, W), three kinds
of convolution.

    R3D-18       every convolution 3x3x3 (time x height x width); stages 2-4 halve T, H and W.
    MC3-18       "mixed convolutions": 3x3x3 in the stem and the first stage, 1x3x3 after it
                 (one frame at a time); stages 2-4 halve H and W only, so the clip keeps its
                 16 frames to the classifier's pool.
    R(2+1)D-18   each 3x3x3 convolution factorised in two: a 1x3x3 one (space) into M channels,
                 BN, ReLU, then a 3x1x1 one (time), M = 27 N_in N_out / (9 N_in + 3 N_out) so
                 that the pair has the 3x3x3's parameters and only the ReLU between them is new;
                 its stem likewise: 1x7x7 into 45 channels, then 3x1x1 into 64.

Kinetics-400 top-1 on 16x112x112 clips (torchvision's weights): 63.20%, 63.96%, 67.46%, the
factorised net best, as the paper found. Each is ``resnet3d``'s 3D ResNet-18 (``ResNetNd``) with
its convolutions replaced by the kind each stage uses; ``video_names`` reads their files.

    >>> create_model("r2plus1d_18")(torch.zeros(1, 3, 16, 112, 112)).shape
    torch.Size([1, 400])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from resnet.errors import ConfigError
from resnet.models.blocks import BasicBlock
from resnet.models.registry import register_model
from resnet.models.resnet3d import ResNetNd

__all__ = ["VideoResNet", "CONV_KINDS"]

CONV_KINDS = ("3d", "2d", "2+1d")  # 3x3x3; 1x3x3 (space only); 1x3x3 then 3x1x1


def factorised_width(inplanes: int, planes: int) -> int:
    """R(2+1)D's M: the 1x3x3 + 3x1x1 pair gets the parameters of a 3x3x3 conv (rounded down)."""
    return (inplanes * planes * 27) // (inplanes * 9 + 3 * planes)


class VideoResNet(ResNetNd):
    """A 3D ResNet-18 whose stem and four stages each convolve with one of ``CONV_KINDS``.

    Args:
        convs: the kind of the stem and of each stage's 3x3 convolutions (five, stem first):
            R3D-18 ``("3d",) * 5``, MC3-18 ``("3d", "3d", "2d", "2d", "2d")``, R(2+1)D-18
            ``("2+1d",) * 5``. A ``"2d"`` stage and its projection stride space only.
        **kwargs: ``ResNetNd``'s options; the stem is torchvision's (3x7x7 or 1x7x7, stride 1x2x2,
            no max-pool) and the projections have no bias.
    """

    def __init__(self, convs: Sequence[str] = ("3d",) * 5, **kwargs: Any) -> None:
        convs = tuple(convs)
        if len(convs) != 5 or any(kind not in CONV_KINDS for kind in convs):
            raise ConfigError(
                f"convs must name the stem's and the four stages' convolutions, five of "
                f"{', '.join(CONV_KINDS)}; got {convs!r}"
            )
        if convs[0] == "2d":
            raise ConfigError("a video net's stem must see time: convs[0] is '3d' or '2+1d'")
        if kwargs.get("spatial_dims", 3) != 3:
            raise ConfigError("a video ResNet convolves (T, H, W): spatial_dims must be 3")
        stem = {"conv1_t_size": (3, 7, 7), "conv1_t_stride": (1, 2, 2), "no_max_pool": True}
        options = {**stem, "bias_downsample": False, "num_classes": 400, **kwargs}
        super().__init__(BasicBlock, [2, 2, 2, 2], **options)
        self.video_convs = convs  # what its weights assume (resnet.models.layouts)
        if convs[0] == "2+1d":
            width = self.conv1.out_channels  # 64 unless widened
            self.conv1 = self._factorised(self.in_chans, width, 45, (7, 7), (1, 2, 2))
        for stage, kind in zip(self.stages(), convs[1:]):
            for block in stage:
                self._replace_convs(block, kind)
        self._init_weights(kwargs.get("zero_init_residual", False))

    def _replace_convs(self, block: BasicBlock, kind: str) -> None:
        """``block``'s two 3x3x3 convolutions (and its projection's stride) as ``kind`` has them."""
        if kind == "3d":
            return
        s = block.stride
        inplanes, planes = block.conv1.in_channels, block.conv1.out_channels
        if kind == "2d":
            block.conv1 = self._spatial(inplanes, planes, (1, s, s))
            block.conv2 = self._spatial(planes, planes, 1)
            if block.downsample is not None:  # time keeps its length
                block.downsample[0].stride = (1, s, s)
            return
        width = factorised_width(inplanes, planes)  # both convs use the block's first M
        block.conv1 = self._factorised(inplanes, planes, width, (3, 3), (s, s, s))
        block.conv2 = self._factorised(planes, planes, width, (3, 3), (1, 1, 1))

    @staticmethod
    def _spatial(inplanes: int, planes: int, stride: Any) -> nn.Conv3d:
        return nn.Conv3d(inplanes, planes, (1, 3, 3), stride, (0, 1, 1), bias=False)

    def _factorised(
        self, inplanes: int, planes: int, width: int, space: tuple[int, int], stride: tuple
    ) -> nn.Sequential:
        """A 1xKxK convolution into ``width`` channels, its norm, ReLU, a 3x1x1 convolution."""
        kh, kw = space
        t, sh, sw = stride
        return nn.Sequential(
            nn.Conv3d(inplanes, width, (1, kh, kw), (1, sh, sw), (0, kh // 2, kw // 2), bias=False),
            self._norm_layer(width),
            nn.ReLU(inplace=True),
            nn.Conv3d(width, planes, (3, 1, 1), (t, 1, 1), (1, 0, 0), bias=False),
        )


@register_model(family="video", default_input_size=112, default_frames=16)
def r3d_18(**kwargs: Any) -> VideoResNet:
    """torchvision's R3D-18: 3x3x3 convolutions throughout (Kinetics-400, 33.4M parameters)."""
    return VideoResNet(**{"convs": ("3d",) * 5, **kwargs})


@register_model(family="video", default_input_size=112, default_frames=16)
def mc3_18(**kwargs: Any) -> VideoResNet:
    """torchvision's MC3-18: 3x3x3 in the stem and stage 1, 1x3x3 after (11.7M parameters)."""
    return VideoResNet(**{"convs": ("3d", "3d", "2d", "2d", "2d"), **kwargs})


@register_model(family="video", default_input_size=112, default_frames=16)
def r2plus1d_18(**kwargs: Any) -> VideoResNet:
    """torchvision's R(2+1)D-18: each 3x3x3 conv a 1x3x3 and a 3x1x1 (31.5M parameters)."""
    return VideoResNet(**{"convs": ("2+1d",) * 5, **kwargs})

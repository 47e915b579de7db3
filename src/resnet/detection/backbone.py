"""A feature-pyramid backbone from any 4-stage network of the zoo, for torchvision's detectors.

``fpn_backbone("resnet50")`` is a drop-in for torchvision's ``resnet_fpn_backbone``: its
``body`` returns the stage outputs C2..C5 (He et al. 2015, arXiv 1512.03385, Table 1) and its
``fpn`` turns them into the pyramid P2..P5 plus a pooled level (Lin et al. 2017, arXiv
1612.03144), as an ``OrderedDict`` ``{'0': ..., '1': ..., ..., 'pool': ...}`` with
``out_channels`` channels, which is what ``FasterRCNN`` and ``RetinaNet`` expect. Module names
are torchvision's (``body.layer1.0.conv1``, ``fpn.inner_blocks.0.0``), so the state dict of a
torchvision FPN backbone loads into ours unchanged.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Optional, Union

from torch import Tensor, nn

from resnet.errors import ConfigError

__all__ = ["fpn_backbone", "BackboneWithFPN", "StageFeatures", "check_fpn_model"]

# From the last stage backwards, as torchvision counts them: 5 trains everything, 0 nothing.
_TRAINABLE_ORDER = ("layer4", "layer3", "layer2", "layer1", "conv1")
_NEEDS = "a feature pyramid needs an ImageNet-family model with 4 stages, e.g. resnet18, resnet50"


class StageFeatures(nn.Module):
    """The stem and the stages of a zoo network up to the last returned one.

    Returns ``OrderedDict`` of the selected stage outputs, named ``'0', '1', ...`` in order, like
    torchvision's ``IntermediateLayerGetter``; the pooling, final norm and classifier are dropped.
    """

    def __init__(self, network: nn.Module, returned_layers: Sequence[int]) -> None:
        super().__init__()
        self.input_bn = getattr(network, "input_bn", nn.Identity())  # Gluon v2's input norm
        self.conv1 = network.conv1
        self.bn1 = network.bn1
        self.relu = network.relu
        self.maxpool = network.maxpool
        self.returned_layers = tuple(returned_layers)
        self.stage_names = [f"layer{i}" for i in range(1, max(self.returned_layers) + 1)]
        for name in self.stage_names:
            setattr(self, name, getattr(network, name))

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.input_bn(x)))))  # (B, C, H/4, W/4)
        features: OrderedDict[str, Tensor] = OrderedDict()
        for index, name in enumerate(self.stage_names, start=1):
            x = getattr(self, name)(x)
            if index in self.returned_layers:
                features[str(len(features))] = x
        return features


class BackboneWithFPN(nn.Module):
    """``body`` (stage outputs) followed by ``fpn``; ``out_channels`` is the pyramid's width."""

    def __init__(
        self,
        body: StageFeatures,
        in_channels_list: list[int],
        out_channels: int = 256,
        extra_blocks: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        from torchvision.ops.feature_pyramid_network import (
            FeaturePyramidNetwork,
            LastLevelMaxPool,
        )

        self.body = body
        self.fpn = FeaturePyramidNetwork(
            in_channels_list=in_channels_list,
            out_channels=out_channels,
            extra_blocks=extra_blocks if extra_blocks is not None else LastLevelMaxPool(),
        )
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return self.fpn(self.body(x))


def fpn_backbone(
    name: str,
    trainable_layers: int = 3,
    returned_layers: Sequence[int] = (1, 2, 3, 4),
    weights: Union[str, os.PathLike, None] = None,
    *,
    extra_blocks: Optional[nn.Module] = None,
    in_chans: int = 3,
    norm_layer: Union[str, Callable[[int], nn.Module], None] = None,
    out_channels: int = 256,
) -> BackboneWithFPN:
    """A zoo network with a feature pyramid on top, for torchvision's ``FasterRCNN``/``RetinaNet``.

    Args:
        name: a 4-stage (ImageNet-family) model of the zoo, e.g. ``"resnet50"``.
        trainable_layers: how many of ``layer4, layer3, layer2, layer1, conv1`` (counted from the
            end) keep ``requires_grad``; 0..5 as in torchvision. The rest are frozen.
        returned_layers: stages (1-based, 1..4) whose outputs feed the pyramid.
        weights: a weight file for the network (torchvision/timm/ours), read by
            ``resnet.models.load_weights``; its classifier is ignored.
        extra_blocks: torchvision's ``LastLevelMaxPool()`` (default, adds ``'pool'``) or
            ``LastLevelP6P7(256, 256)`` for RetinaNet.
        in_chans: input channels (1 for grayscale; pretrained RGB stems are summed).
        norm_layer: None keeps the network's own norms, with its BatchNorms frozen when
            ``weights`` are given (detection batches are too small for batch statistics, the
            reason torchvision freezes them); a name replaces them all.
        out_channels: channels of every pyramid level.
    """
    from resnet.models import create_model, load_weights

    if not 0 <= trainable_layers <= 5:
        raise ConfigError(
            f"trainable_layers must be in 0..5 (5 trains every stage), got {trainable_layers}"
        )
    returned = tuple(int(i) for i in returned_layers)
    if not returned or len(set(returned)) != len(returned) or not set(returned) <= {1, 2, 3, 4}:
        raise ConfigError(
            f"returned_layers must be distinct stages in 1..4, got {tuple(returned_layers)}"
        )
    returned = tuple(sorted(returned))
    check_fpn_model(name)
    # Weights are loaded into BatchNorm and frozen afterwards: a file saved from BatchNorm holds
    # batch counters that a FrozenBatchNorm2d has no slot for. By default the network keeps its
    # own norms (BiT's and resnet50_gn's are group norms, which hold no statistics to freeze).
    freeze_norms = norm_layer == "frozen_batch" or (norm_layer is None and weights is not None)
    own = {} if norm_layer is None else {"norm_layer": "batch" if freeze_norms else norm_layer}
    network = create_model(name, in_chans=in_chans, **own)
    if len(network.feature_info) != 4:
        raise ConfigError(f"{name} has {len(network.feature_info)} stages; {_NEEDS}")
    if weights is not None:
        load_weights(network, weights)
    if freeze_norms:
        _freeze_batch_norms(network)

    layers_to_train = list(_TRAINABLE_ORDER[:trainable_layers])
    if trainable_layers == 5:
        layers_to_train.append("bn1")
    for param_name, parameter in network.named_parameters():
        if not any(param_name.startswith(layer) for layer in layers_to_train):
            parameter.requires_grad_(False)

    in_channels_list = [network.feature_info[i - 1]["num_chs"] for i in returned]
    body = StageFeatures(network, returned)
    backbone = BackboneWithFPN(body, in_channels_list, out_channels, extra_blocks)
    backbone.model_name = name
    backbone.returned_layers = returned
    # The stride of each pyramid level, so anchor sizes can be matched to object sizes.
    backbone.strides = [network.feature_info[i - 1]["reduction"] for i in returned]
    return backbone


def check_fpn_model(name: str) -> None:
    """Raise ``ConfigError`` unless ``name`` is an ImageNet-family (4-stage) model of the zoo."""
    from resnet.models import model_entry

    entry = model_entry(name)
    if entry.family != "imagenet":
        stages = " with 3 stages" if entry.family == "cifar" else ""
        raise ConfigError(f"{name} is a {entry.family}-family model{stages}; {_NEEDS}")


def _freeze_batch_norms(module: nn.Module) -> None:
    """Swap each ``BatchNorm2d`` in ``module`` for a ``FrozenBatchNorm2d`` with its statistics."""
    from resnet.models.norm import FrozenBatchNorm2d

    for child_name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, child.eps)
            for buffer in ("weight", "bias", "running_mean", "running_var"):
                value = getattr(child, buffer)  # None: no scale or shift (Gluon v2's input_bn)
                if value is not None:
                    getattr(frozen, buffer).copy_(value.detach())
            setattr(module, child_name, frozen.to(child.running_mean.device))
        else:
            _freeze_batch_norms(child)

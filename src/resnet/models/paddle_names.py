"""PaddleClas's ResNets (``ResNet50_pretrained.pdparams``, ``ResNet50_vd_ssld_pretrained.pdparams``
...: its "legendary models") in our names.

PaddleClas numbers its blocks through the whole net (``blocks.0`` .. ``blocks.15`` for
ResNet-50) and starts each stage with a block that has a projection shortcut (``short``).
Each convolution is a ConvBNLayer, ``conv`` and ``bn`` (Paddle's BatchNorm: ``weight``,
``bias``, ``_mean``, ``_variance``, epsilon 1e-5), and the classifier's weight is stored
(in, out):

    stem.0 (vb: 7x7)  or  stem.0/1/2 (vd: 3x3s of 32, 32, 64) -> conv1, bn1  or  conv1.0..6, bn1
    blocks.{j}.conv0/conv1/conv2, blocks.{j}.short              -> layer{S}.{B}.conv1..3, downsample
    fc                                                           -> fc (transposed)

"vb" strides the 3x3 (torchvision's resnet50); "vd" adds the deep stem and an average pool
before the strided shortcut's 1x1, ceil mode, padding left out of the mean: timm's resnet50d.
Inputs are torchvision's (RGB, ImageNet mean and std; resize 256, crop 224). PaddleClas's
ResNet-18/34 project every stage's first shortcut, the first stage's too, where torchvision's
adds the input itself: they load into resnet18/34(d) built with ``project_first_shortcut``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from resnet.errors import WeightsError

__all__ = ["is_paddle_resnet", "from_paddle_names", "paddle_basic_blocks"]

_BLOCK = re.compile(r"blocks\.(\d+)\.")
_BN = {"weight": "weight", "bias": "bias", "_mean": "running_mean", "_variance": "running_var"}
_DEEP_STEM = ("conv1.0", "conv1.1"), ("conv1.3", "conv1.4"), ("conv1.6", "bn1")


def is_paddle_resnet(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` holds PaddleClas's ResNet names."""
    return "stem.0.conv.weight" in state and "blocks.0.conv0.conv.weight" in state


def paddle_basic_blocks(state: Mapping[str, Tensor]) -> bool:
    """Whether the net is a ResNet-18/34 (two convolutions a block)."""
    return "blocks.0.conv2.conv.weight" not in state


def from_paddle_names(state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """``state`` in our names; every tensor is read, or ``WeightsError``."""
    deep = "stem.1.conv.weight" in state
    read: set[str] = set()
    renamed: dict[str, Tensor] = {}
    for index, (conv, norm) in enumerate(_DEEP_STEM if deep else [("conv1", "bn1")]):
        renamed.update(_conv_bn(state, f"stem.{index}.", (conv, norm), read, label))
    branches = {"conv0": ("conv1", "bn1"), "conv1": ("conv2", "bn2")}
    if not paddle_basic_blocks(state):
        branches["conv2"] = ("conv3", "bn3")
    first = 1 if deep else 0  # timm's average-pool shortcut keeps its pool at downsample.0
    branches["short"] = (f"downsample.{first}", f"downsample.{first + 1}")
    stage, block = 0, 0
    count = 1 + max(int(m.group(1)) for key in state if (m := _BLOCK.match(key)))
    for j in range(count):
        if f"blocks.{j}.short.conv.weight" in state:  # each stage's first block
            stage, block = stage + 1, 0
        for theirs, names in branches.items():
            if f"blocks.{j}.{theirs}.conv.weight" in state:
                ours = tuple(f"layer{stage}.{block}.{name}" for name in names)
                renamed.update(_conv_bn(state, f"blocks.{j}.{theirs}.", ours, read, label))
        block += 1
    if "fc.weight" in state and "fc.bias" in state:
        renamed["fc.weight"] = state["fc.weight"].T.contiguous()  # Paddle's Linear: (in, out)
        renamed["fc.bias"] = state["fc.bias"]
        read.update({"fc.weight", "fc.bias"})
    unread = [key for key in state if key not in read]
    if unread:
        raise WeightsError(
            f"{label}: tensors outside PaddleClas's ResNet ({', '.join(unread[:4])}); only its "
            "ConvBNLayers and one fc classifier are read"
        )
    return renamed


def _conv_bn(state, layer: str, names: tuple[str, str], read: set[str], label: str) -> dict:
    """ConvBNLayer ``layer`` as our convolution and BatchNorm ``names``."""
    keys = [f"{layer}conv.weight", *(f"{layer}bn.{part}" for part in _BN)]
    missing = [key for key in keys if key not in state]
    if missing:
        raise WeightsError(
            f"{label}: PaddleClas's ResNet names, but without {', '.join(missing[:3])}; the file "
            "is incomplete or another network's"
        )
    read.update(keys)
    renamed = {f"{names[0]}.weight": state[keys[0]]}
    renamed.update({f"{names[1]}.{ours}": state[f"{layer}bn.{part}"] for part, ours in _BN.items()})
    return renamed

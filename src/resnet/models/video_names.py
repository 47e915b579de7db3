"""torchvision's video ResNets (``torchvision.models.video``, Tran et al. 2018, arXiv 1711.11248)
in our names (``resnet.models.video``).

Their layers are ``nn.Sequential``s of a convolution and its BatchNorm; in R(2+1)D-18 the
convolution is itself a ``Sequential`` (1x3x3 conv, BN, ReLU, 3x1x1 conv), and so is the stem's:

    stem.0, stem.1                       -> conv1, bn1         (R3D-18, MC3-18)
    stem.0, stem.1, stem.3, stem.4       -> conv1.0, conv1.1, conv1.3, bn1      (R(2+1)D-18)
    layer{S}.{B}.conv{K}.0               -> layer{S}.{B}.conv{K}  (R(2+1)D-18: .0.0 -> .0, ..)
    layer{S}.{B}.conv{K}.1               -> layer{S}.{B}.bn{K}

(``downsample`` and ``fc`` keep their names). Which of the three a file is shows in its tensors:
R(2+1)D's factorised keys, MC3's 1x3x3 kernels after the first stage; ``video_convs`` says so,
and loading it into another of them is refused naming the right one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

__all__ = [
    "is_torchvision_video_resnet",
    "from_torchvision_video_names",
    "video_convs",
    "describe_video_net",
]

_R3D, _MC3, _R2PLUS1D = ("3d",) * 5, ("3d", "3d", "2d", "2d", "2d"), ("2+1d",) * 5
_NAMES = {_R3D: ("R3D-18", "r3d_18"), _MC3: ("MC3-18", "mc3_18"),
          _R2PLUS1D: ("R(2+1)D-18", "r2plus1d_18")}  # fmt: skip


def is_torchvision_video_resnet(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is one of torchvision's video ResNets (a 5-d ``stem.0.weight``)."""
    stem = state.get("stem.0.weight")
    if stem is None or stem.dim() != 5:
        return False
    return "layer1.0.conv1.0.weight" in state or "layer1.0.conv1.0.0.weight" in state


def video_convs(state: Mapping[str, Tensor]) -> tuple[str, ...]:
    """The kinds of convolution of the stem and the four stages (``VideoResNet``'s ``convs``)."""
    if "layer1.0.conv1.0.0.weight" in state:
        return _R2PLUS1D
    later = state.get("layer2.0.conv1.0.weight")
    return _MC3 if later is not None and later.dim() == 5 and later.shape[2] == 1 else _R3D


def describe_video_net(convs: tuple[str, ...]) -> str:
    """The network ``convs`` makes and the model to load it into, as the load error says it."""
    title, model = _NAMES.get(convs, ("video ResNet", "the video model of its convolutions"))
    return f"torchvision's {title} (load it into {model})"


_STEM_FACTORISED = {"stem.0.": "conv1.0.", "stem.1.": "conv1.1.", "stem.3.": "conv1.3.",
                    "stem.4.": "bn1."}  # fmt: skip
_STEM = {"stem.0.": "conv1.", "stem.1.": "bn1."}
_BLOCK = re.compile(r"^(layer\d+\.\d+)\.conv([12])\.([01])\.(.*)$")


def from_torchvision_video_names(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A torchvision video ResNet's ``state`` in our names."""
    stem = _STEM_FACTORISED if video_convs(state) == _R2PLUS1D else _STEM
    renamed = {}
    for key, value in state.items():
        for old, new in stem.items():
            if key.startswith(old):
                key = new + key[len(old) :]
        match = _BLOCK.match(key)
        if match:
            block, k, part, rest = match.groups()
            # conv{K}.0 is the convolution (in R(2+1)D a Sequential: .0.0 -> .0), conv{K}.1 its BN
            key = f"{block}.conv{k}.{rest}" if part == "0" else f"{block}.bn{k}.{rest}"
        renamed[key] = value
    return renamed

"""torchvision's video ResNets (``torchvision.models.video``, Tran et al. 2018, arXiv 1711.11248)
in our names.

R3D-18 (``r3d_18``, Kinetics-400's ``r3d_18-b3b3357e.pth``) is a 3D ResNet-18 whose layers are
``nn.Sequential``s of a convolution and its BatchNorm:

    stem.0, stem.1                       -> conv1, bn1
    layer{S}.{B}.conv1.0, conv1.1        -> layer{S}.{B}.conv1, bn1
    layer{S}.{B}.conv2.0, conv2.1        -> layer{S}.{B}.conv2, bn2

(``downsample`` and ``fc`` keep their names). Its siblings compute otherwise and are refused by
name: MC3-18 convolves space only after its first stage (1x3x3 kernels), R(2+1)D-18 factorises
each 3x3x3 convolution into a 1x3x3 and a 3x1x1 one.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from resnet.errors import WeightsError

__all__ = ["is_torchvision_video_resnet", "from_torchvision_video_names"]


def is_torchvision_video_resnet(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is one of torchvision's video ResNets (a 5-d ``stem.0.weight``)."""
    stem = state.get("stem.0.weight")
    if stem is None or stem.dim() != 5:
        return False
    return "layer1.0.conv1.0.weight" in state or "layer1.0.conv1.0.0.weight" in state


def from_torchvision_video_names(state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """R3D-18's ``state`` in our names; ``WeightsError`` for MC3-18 and R(2+1)D-18."""
    if "layer1.0.conv1.0.0.weight" in state:
        _refuse(label, "R(2+1)D-18 (each 3x3x3 convolution factorised in two)")
    if any(
        key.endswith((".conv1.0.weight", ".conv2.0.weight")) and value.shape[2] == 1
        for key, value in state.items()
    ):
        _refuse(label, "MC3-18 (1x3x3 convolutions after its first stage)")
    renamed = {}
    for key, value in state.items():
        key = key.replace("stem.0.", "conv1.").replace("stem.1.", "bn1.")
        for k in ("1", "2"):
            key = key.replace(f".conv{k}.0.", f".conv{k}.").replace(f".conv{k}.1.", f".bn{k}.")
        renamed[key] = value
    return renamed


def _refuse(label: str, what: str) -> None:
    raise WeightsError(
        f"{label}: torchvision's {what}; of its video ResNets only R3D-18 is built here (r3d_18)"
    )

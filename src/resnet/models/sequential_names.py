"""A torchvision ResNet saved as ``nn.Sequential(*list(resnet.children()))``: its modules by
position instead of by name.

Taking a ResNet's children into a Sequential (without the last, ``fc``, or the last two, to get
a trunk) is the usual way to make a feature extractor in PyTorch, and some weight files are
saved so. RadImageNet's PyTorch ``ResNet50.pt`` (Mei et al. 2022, 1.35 million radiology
images; BMEII-AI/RadImageNet) is the state_dict of a module whose ``backbone`` is
``nn.Sequential(*list(resnet50().children())[:9])``: ``backbone.0.weight`` is ``conv1.weight``,
``backbone.4.0.conv1.weight`` is ``layer1.0.conv1.weight``. The positions are torchvision's
order of children::

    0 conv1   1 bn1   2 relu   3 maxpool   4-7 layer1-layer4   8 avgpool   9 fc

(no parameters at 2, 3 and 8). The net is torchvision's and takes the input it was trained on
(RadImageNet's: ImageNet's mean and standard deviation, as its example normalises).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

__all__ = ["is_sequential_resnet", "from_sequential_names"]

_CHILDREN = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
_KEY = re.compile(r"(?:([A-Za-z_]\w*)\.)?(\d+)\.(.+)")  # [prefix.]position.rest


def _split(state: Mapping[str, Tensor]) -> dict[str, tuple[str, str, str]]:
    """Each key as (prefix, position, rest), or an empty mapping where a key does not parse."""
    parts = {key: _KEY.fullmatch(key) for key in state}
    if not all(parts.values()):
        return {}
    return {key: match.groups(default="") for key, match in parts.items()}


def is_sequential_resnet(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is a torchvision ResNet's children by position, under at most one
    common prefix: a 3-channel stem conv at 0, its BatchNorm at 1, layer1's first block at 4,
    and parameters only where torchvision's children have them (0, 1, 4-7, 9)."""
    split = _split(state)
    if not split or len({prefix for prefix, _, _ in split.values()}) != 1:
        return False
    prefix = next(iter(split.values()))[0]
    at = f"{prefix}." if prefix else ""
    stem = state.get(f"{at}0.weight")
    return (
        stem is not None
        and stem.dim() == 4
        and stem.shape[1] == 3
        and f"{at}1.running_var" in state
        and f"{at}4.0.conv1.weight" in state
        and {position for _, position, _ in split.values()} <= {*_CHILDREN, "9"}
    )


def from_sequential_names(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` (``is_sequential_resnet``) in torchvision's names; position 9 is ``fc``."""
    names = {**_CHILDREN, "9": "fc"}
    return {
        f"{names[position]}.{rest}": state[key]
        for key, (_, position, rest) in _split(state).items()
    }

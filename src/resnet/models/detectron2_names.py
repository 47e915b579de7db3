"""torchvision's ResNets in detectron2's names: the ``.pkl`` files detectron2's projects start
from when their backbone is not MSRA's (``convert-torchvision-to-d2.py``: Mask2Former's and
MaskFormer's ``R-50.pkl``; MoCo's ``convert-pretrain-to-detectron2.py`` and its kin).

Those scripts only rename torchvision's tensors, into a pickle ``{"model": {name: array},
"__author__": ..., "matching_heuristics": True}``:

    conv1, bn1                         -> stem.conv1, stem.conv1.norm
    layer{S}.{B}.conv{K}, bn{K}        -> res{S+1}.{B}.conv{K}, res{S+1}.{B}.conv{K}.norm
    layer{S}.{B}.downsample.0, .1      -> res{S+1}.{B}.shortcut, res{S+1}.{B}.shortcut.norm
    fc                                 -> stem.fc

so the net is torchvision's (the 3x3 strided, ``STRIDE_IN_1X1: False``) and takes torchvision's
input (RGB, ImageNet mean and std), which their configs set. A checkpoint detectron2 itself
trained (``model_final_*.pkl``: ``backbone.bottom_up.res2...``) is refused: its input convention
and stride are in the config it was trained with, not in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from resnet.errors import WeightsError

__all__ = ["is_detectron2_resnet", "from_detectron2_names", "check_not_a_detectron2_detector"]

_NAME = re.compile(r"(?:stem\.(conv1|fc)|res(\d)\.(\d+)\.(conv\d|shortcut))(\.norm)?\.(\w+)")
_DETECTOR = ("backbone.bottom_up.stem.", "backbone.stem.", "backbone.res2.")


def is_detectron2_resnet(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` holds a ResNet in detectron2's names, not under a detector's prefix."""
    return "stem.conv1.weight" in state and any(key.startswith("res2.0.") for key in state)


def check_not_a_detectron2_detector(state: Mapping[str, Tensor], label: str) -> None:
    """``WeightsError`` for a checkpoint of a detector detectron2 trained."""
    found = next((key for key in state if key.startswith(_DETECTOR)), None)
    if found is not None:
        raise WeightsError(
            f"{label}: a detector detectron2 trained ({found}, ...); its backbone's input "
            "convention and STRIDE_IN_1X1 are in the config it was trained with, not in the "
            "file; load the ImageNet file it started from (R-50.pkl) instead"
        )


def from_detectron2_names(state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """``state`` in torchvision's (our) names; every tensor is renamed, or ``WeightsError``."""
    renamed, unknown = {}, []
    for key, value in state.items():
        match = _NAME.fullmatch(key)
        if match is None:
            unknown.append(key)
            continue
        stem, stage, block, layer, norm, part = match.groups()
        if stem == "fc" and norm is None:
            renamed[f"fc.{part}"] = value
        elif stem == "conv1":
            renamed[f"{'bn1' if norm else 'conv1'}.{part}"] = value
        elif stage is not None and layer == "shortcut":
            ours = f"layer{int(stage) - 1}.{block}.downsample.{1 if norm else 0}"
            renamed[f"{ours}.{part}"] = value
        elif stage is not None:
            index = layer.removeprefix("conv")
            ours = f"layer{int(stage) - 1}.{block}.{'bn' if norm else 'conv'}{index}"
            renamed[f"{ours}.{part}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise WeightsError(
            f"{label}: tensors outside a ResNet in detectron2's names ({', '.join(unknown[:4])}); "
            "only stem.*, res2..res5.* and stem.fc are read"
        )
    return renamed

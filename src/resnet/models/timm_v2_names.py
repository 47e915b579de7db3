"""timm's ResNetV2 (``resnetv2_*``, the pre-activation ResNet of arXiv 1603.05027) in our names.

timm keeps its pre-activation nets in another module layout than its ResNet; the tensors are
those of our ``preact_resnet*`` (``resnet_d.PREACT_VARIANTS`` for the D and T stems) and
``bit_resnet*`` (``bit.py``):

    stem.conv                                     -> conv1 (the 7x7 stem)
    stem.conv1, .norm1, .conv2, .norm2, .conv3    -> conv1.0, .1, .3, .4, .6 (deep, tiered stems)
    stages.S.blocks.B.normI, .convI               -> layer{S+1}.B.bnI, .convI
    stages.S.blocks.B.downsample.conv             -> layer{S+1}.B.downsample.0 (.1 in the D and T
                                                     nets, after their average pool)
    norm, head.fc (a 1x1 conv)                    -> norm, fc (a linear layer)

``TIMM_RESNETV2`` names the model each net loads into; ``resnetv2_50d_gn`` is
``preact_resnet50d`` with ``norm_layer="group"``. BiT's tensors (group norm after a 7x7 stem) are
raw weights its convolutions standardise, so they fit a group-norm ``preact_resnet50`` key for
key and would compute another network there: ``standardizes_weights`` tells ``load_weights``
which kind the file is. ``resnetv2_50d_evos`` is ``preact_resnet50d`` with
``norm_layer="evonorm_s0"`` (``norm.EvoNormS0``); the FilterResponseNorm nets are refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from resnet.errors import WeightsError

__all__ = [
    "TIMM_RESNETV2",
    "is_timm_resnetv2",
    "standardizes_weights",
    "has_evonorm",
    "from_timm_resnetv2_names",
]

# timm's name -> ours (same tensors, same outputs).
TIMM_RESNETV2 = {
    **{f"resnetv2_{d}": f"preact_resnet{d}" for d in (18, 34, 50, 101, 152)},
    **{f"resnetv2_{d}d": f"preact_resnet{d}d" for d in (18, 34, 50, 101, 152)},
    "resnetv2_50t": "preact_resnet50t",
    **{
        f"resnetv2_{d}x{w}_bit": f"bit_resnet{d}x{w}"
        for d, w in ((50, 1), (50, 3), (101, 1), (101, 3), (152, 2), (152, 4))
    },
}

_BLOCK = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.")
_DEEP_STEM = {"conv1": 0, "norm1": 1, "conv2": 3, "norm2": 4, "conv3": 6}
_STEMS = ("stem.conv.weight", "stem.conv1.weight")
# EvoNorm-S0's own parameter, and FilterResponseNorm's, which no model here has.
_EVONORM_PART, _FRN_PART = ".v", ".tau"


def is_timm_resnetv2(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is in timm's ResNetV2 names (a ``stem`` and ``stages.S.blocks.B``)."""
    return any(k in state for k in _STEMS) and any(_BLOCK.match(k) for k in state)


def has_evonorm(state: Mapping[str, Tensor]) -> bool:
    """Whether a timm ResNetV2 state normalises with EvoNorm-S0 (``resnetv2_50d_evos``)."""
    return any(k.endswith(_EVONORM_PART) for k in state)


def standardizes_weights(state: Mapping[str, Tensor]) -> bool:
    """Whether a timm ResNetV2 state is BiT's: group norm (no running statistics) after the
    7x7 stem. timm's other group-norm net, ``resnetv2_50d_gn``, has the deep stem."""
    group_norm = not any(k.endswith("norm1.running_mean") for k in state)
    return group_norm and "stem.conv.weight" in state


def from_timm_resnetv2_names(state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """``state`` renamed to ours; ``WeightsError`` for the nets no model of this zoo computes."""
    frn = next((k for k in state if k.endswith(_FRN_PART)), None)
    if frn is not None:
        raise WeightsError(
            f"{label}: a timm ResNetV2 with FilterResponseNorm layers ({frn}); no model of this "
            "zoo has them: use a batch-norm or EvoNorm resnetv2_* file (preact_resnet*)"
        )
    deep_stem = "stem.conv1.weight" in state  # timm's D and T nets also average-pool shortcuts
    shortcut = "downsample.1." if deep_stem else "downsample.0."
    renamed = {}
    for key, value in state.items():
        match = _BLOCK.match(key)
        if match:
            rest = re.sub(r"^norm(\d)\.", r"bn\1.", key[match.end() :])
            rest = rest.replace("downsample.conv.", shortcut)
            key = f"layer{int(match[1]) + 1}.{match[2]}.{rest}"
        elif key.startswith("stem.conv."):
            key = "conv1." + key.removeprefix("stem.conv.")
        elif key.startswith("stem."):
            part, _, rest = key.removeprefix("stem.").partition(".")
            if part in _DEEP_STEM:
                key = f"conv1.{_DEEP_STEM[part]}.{rest}"
        elif key.startswith("head.fc."):
            key = "fc." + key.removeprefix("head.fc.")
            if value.dim() == 4 and value.shape[2:] == (1, 1):  # timm's head is a 1x1 conv
                value = value.flatten(1)
        renamed[key] = value
    return renamed

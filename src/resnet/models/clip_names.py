"""CLIP's ResNets (OpenAI's ``RN50.pt`` .. ``RN50x64.pt``, open_clip, timm's ``resnet*_clip``)
in our names.

OpenAI's (and open_clip's) image tower is under ``visual.``, beside the text tower, which is
dropped. Its blocks carry torchvision's names but for the shortcut, whose average pool is
``downsample.-1``; its stem and pool do not:

    visual.conv1, bn1, conv2, bn2, conv3, bn3    -> conv1.0, conv1.1, conv1.3, conv1.4, conv1.6, bn1
    visual.layerS.B.downsample.0, .1             -> layerS.B.downsample.1, .2
    visual.attnpool.positional_embedding         -> global_pool.pos_embed
    visual.attnpool.{q,k,v}_proj                 -> global_pool.{q,k,v}
    visual.attnpool.c_proj                       -> fc

timm's ``resnet*_clip`` (a ByobNet) names the same tensors ``stem.convN.{conv,bn}``,
``stages.S.B.{conv1_1x1,conv2_kxk,conv3_1x1}.{conv,bn}``, ``shortcut.conv.{conv,bn}`` and
``head.{pos_embed,q,k,v,proj}`` (``head.fc`` for its ``_gap`` nets).

What the names cannot show, ``clip.py``'s models build: every downsampling block subsamples
with a 2x2 average pool after its 3x3 (``anti_alias="avg"``); the file assumes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from resnet.errors import WeightsError

__all__ = ["is_openai_clip", "is_timm_clip", "from_openai_clip_names", "from_timm_clip_names"]

_STEM = {"conv1": "conv1.0", "bn1": "conv1.1", "conv2": "conv1.3", "bn2": "conv1.4"}
_STEM.update({"conv3": "conv1.6", "bn3": "bn1"})
_OPENAI_POOL = {"positional_embedding": "global_pool.pos_embed", "c_proj": "fc"}
_OPENAI_POOL.update({f"{p}_proj": f"global_pool.{p}" for p in "qkv"})
_TIMM_STEM = {f"stem.conv{i}.conv": _STEM[f"conv{i}"] for i in (1, 2, 3)}
_TIMM_STEM.update({f"stem.conv{i}.bn": _STEM[f"bn{i}"] for i in (1, 2, 3)})
_TIMM_HEAD = {"head.pos_embed": "global_pool.pos_embed", "head.proj": "fc", "head.fc": "fc"}
_TIMM_HEAD.update({f"head.{p}": f"global_pool.{p}" for p in "qkv"})
_TIMM_BLOCK = re.compile(r"stages\.(\d+)\.(\d+)\.(conv1_1x1|conv2_kxk|conv3_1x1|shortcut\.conv)\.")
_TIMM_PARTS = {"conv1_1x1": "1", "conv2_kxk": "2", "conv3_1x1": "3"}


def is_openai_clip(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is a CLIP checkpoint in OpenAI's names (its image tower ``visual.``)."""
    return "visual.conv1.weight" in state


def is_timm_clip(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is timm's ``resnet*_clip`` (a ByobNet with a three-conv stem)."""
    return "stem.conv1.conv.weight" in state and "stages.0.0.conv1_1x1.conv.weight" in state


def from_openai_clip_names(state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """The image tower of ``state`` in our names; ``WeightsError`` for a CLIP ViT."""
    if "visual.layer1.0.conv1.weight" not in state:
        raise WeightsError(
            f"{label}: a CLIP whose image tower is a vision transformer (ViT-B/32 ..), not a "
            "ResNet; use RN50, RN101, RN50x4, RN50x16 or RN50x64's file"
        )
    renamed = {}
    for key, value in state.items():
        if not key.startswith("visual."):
            continue  # the text tower
        key = key.removeprefix("visual.")
        first, _, rest = key.partition(".")
        if first in _STEM:
            key = f"{_STEM[first]}.{rest}"
        elif ".downsample." in key:  # (pool "-1", conv "0", BN "1"): ours are 0, 1, 2
            head, _, tail = key.partition(".downsample.")
            index, _, rest = tail.partition(".")
            key = f"{head}.downsample.{int(index) + 1}.{rest}"
        elif first == "attnpool":
            name, _, rest = rest.partition(".")
            key = f"{_OPENAI_POOL.get(name, 'global_pool.' + name)}{'.' + rest if rest else ''}"
        renamed[key] = value
    return renamed


def from_timm_clip_names(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` in our names; keys no rule knows keep theirs (reported as unexpected)."""
    renamed = {}
    for key, value in state.items():
        block = _TIMM_BLOCK.match(key)
        if block:
            stage, index, part = block.groups()
            rest = key[block.end() :]
            where = f"layer{int(stage) + 1}.{index}."
            if part == "shortcut.conv":
                module = "downsample.1." if rest.startswith("conv.") else "downsample.2."
            else:
                module = f"{'conv' if rest.startswith('conv.') else 'bn'}{_TIMM_PARTS[part]}."
            key = where + module + rest.partition(".")[2]
        else:
            for old, new in (*_TIMM_STEM.items(), *_TIMM_HEAD.items()):
                if key.startswith(f"{old}.") or key == old:
                    key = new + key[len(old) :]
                    break
        renamed[key] = value
    return renamed

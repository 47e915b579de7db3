"""Hugging Face transformers' ResNet (``microsoft/resnet-18`` .. ``-152``) in torchvision's names.

A ``save_pretrained`` folder holds ``model.safetensors`` (or ``pytorch_model.bin``) and
``config.json``. Its ResNet is torchvision's, module for module, under other names:

    resnet.embedder.embedder.{convolution,normalization}    -> conv1, bn1
    resnet.encoder.stages.S.layers.B.layer.I.convolution   -> layer{S+1}.B.conv{I+1} (bn{I+1})
    resnet.encoder.stages.S.layers.B.shortcut.convolution  -> layer{S+1}.B.downsample.0 (.1)
    classifier.1                                           -> fc

(``ResNetModel`` saved alone has no ``resnet.`` prefix and no classifier.) The names say nothing
about strides, so ``config.json``, where it lies beside the file, is checked for the options that
would make the same tensors compute something else than torchvision's ResNet v1.5.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from torch import Tensor

from resnet.errors import WeightsError

__all__ = ["is_transformers_resnet", "from_transformers_names", "saved_weights"]

# What ``save_pretrained`` writes the weights to, newest format first.
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

_PREFIX = r"^(?:resnet\.)?"
_PART = r"(convolution|normalization)\."
_STEM = re.compile(_PREFIX + r"embedder\.embedder\." + _PART)
_BLOCK = re.compile(
    _PREFIX + r"encoder\.stages\.(\d+)\.layers\.(\d+)\.(shortcut|layer\.\d+)\." + _PART
)
_CLASSIFIER = re.compile(r"^classifier\.1\.")


def _stem_name(match: re.Match) -> str:
    return "conv1." if match[1] == "convolution" else "bn1."


def _block_name(match: re.Match) -> str:
    stage, block, where, part = int(match[1]) + 1, match[2], match[3], match[4]
    if where == "shortcut":
        return f"layer{stage}.{block}.downsample.{0 if part == 'convolution' else 1}."
    index = int(where.split(".")[1]) + 1
    return f"layer{stage}.{block}.{'conv' if part == 'convolution' else 'bn'}{index}."


_RULES = ((_STEM, _stem_name), (_BLOCK, _block_name), (_CLASSIFIER, lambda match: "fc."))
# config.json values under which the tensors mean torchvision's ResNet (v1.5: stride on the 3x3).
_TORCHVISION_CONFIG = {
    "downsample_in_bottleneck": False,  # True: stride on the first 1x1 conv (ResNet v1)
    "downsample_in_first_stage": False,  # True: layer1 halves the map too
    "hidden_act": "relu",
}


def saved_weights(folder: Path) -> Optional[Path]:
    """The weight file of a ``save_pretrained`` folder (a hub download), else None."""
    return next((folder / n for n in _WEIGHT_FILES if (folder / n).is_file()), None)


def is_transformers_resnet(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is in transformers' ResNet names (its stem is ``embedder.embedder``)."""
    return any(_STEM.match(key) for key in state)


def from_transformers_names(
    state: Mapping[str, Tensor], source: Optional[Path], label: str
) -> dict[str, Tensor]:
    """``state`` renamed to torchvision's names; keys no rule knows keep theirs (and are then
    reported as unexpected). ``source`` is the weight file: its folder's ``config.json``, if
    any, must not stride, activate or downsample differently from torchvision's ResNet."""
    if source is not None and (source.parent / "config.json").is_file():
        _check_config(source.parent / "config.json", label)
    renamed = {}
    for key, value in state.items():
        for pattern, replace in _RULES:
            match = pattern.match(key)
            if match:
                key = replace(match) + key[match.end() :]
                break
        renamed[key] = value
    return renamed


def _check_config(path: Path, label: str) -> None:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise WeightsError(
            f"{path}: not a readable config.json ({error}); fix or remove it"
        ) from None
    if not isinstance(config, dict) or config.get("model_type", "resnet") != "resnet":
        raise WeightsError(f"{path}: not a transformers ResNet config (model_type 'resnet')")
    for option, expected in _TORCHVISION_CONFIG.items():
        if config.get(option, expected) != expected:
            raise WeightsError(
                f"{label}: its config.json sets {option}={json.dumps(config[option])}, so its "
                f"tensors compute another network than torchvision's ResNet ({option}="
                f"{json.dumps(expected)}); no model of this zoo matches it"
            )

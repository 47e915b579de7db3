"""Hugging Face transformers' ResNet (``microsoft/resnet-18`` .. ``-152``) in torchvision's names.

A ``save_pretrained`` folder holds ``model.safetensors`` (or ``pytorch_model.bin``) and
``config.json``. Its ResNet is torchvision's, module for module, under other names:

    resnet.embedder.embedder.{convolution,normalization}    -> conv1, bn1
    resnet.encoder.stages.S.layers.B.layer.I.convolution   -> layer{S+1}.B.conv{I+1} (bn{I+1})
    resnet.encoder.stages.S.layers.B.shortcut.convolution  -> layer{S+1}.B.downsample.0 (.1)
    classifier.1                                           -> fc

(``ResNetModel`` saved alone has no ``resnet.`` prefix and no classifier.) The names say nothing
about strides, so ``config.json``, where it lies beside the file, is read for the options that
would make the same tensors compute something else than torchvision's ResNet v1.5: a first
stage that halves the map and another activation are refused; ``downsample_in_bottleneck``
(the paper's v1, stride on the first 1x1) is what ``stride_in_1x1`` builds
(``config_stride_in_1x1``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from torch import Tensor

from resnet.errors import WeightsError

__all__ = [
    "is_transformers_resnet",
    "from_transformers_names",
    "config_stride_in_1x1",
    "read_config_json",
    "saved_weights",
]

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
    "downsample_in_first_stage": False,  # True: layer1 halves the map too
    "hidden_act": "relu",
}


def saved_weights(folder: Path) -> Optional[Path]:
    """The weight file of a ``save_pretrained`` folder (a hub download), else None."""
    return next((folder / n for n in _WEIGHT_FILES if (folder / n).is_file()), None)


def is_transformers_resnet(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is in transformers' ResNet names (its stem is ``embedder.embedder``)."""
    return any(_STEM.match(key) for key in state)


def from_transformers_names(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` renamed to torchvision's names; keys no rule knows keep theirs (and are then
    reported as unexpected). Read the config beside the file first (``config_stride_in_1x1``)."""
    renamed = {}
    for key, value in state.items():
        for pattern, replace in _RULES:
            match = pattern.match(key)
            if match:
                key = replace(match) + key[match.end() :]
                break
        renamed[key] = value
    return renamed


def config_stride_in_1x1(source: Optional[Path], label: str) -> Optional[bool]:
    """Whether the ``config.json`` beside ``source`` puts the stride on the first 1x1 conv
    (``downsample_in_bottleneck``); None without one. ``WeightsError`` for a config that makes
    the tensors compute a network no model of this zoo builds."""
    if source is None or not (source.parent / "config.json").is_file():
        return None
    config = _read_config(source.parent / "config.json", label)
    return bool(config.get("downsample_in_bottleneck", False))


def read_config_json(path: Path) -> Any:
    """The parsed ``config.json`` of a Hugging Face hub folder (transformers' or timm's), or a
    ``WeightsError`` saying it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise WeightsError(
            f"{path}: not a readable config.json ({error}); fix or remove it"
        ) from None


def _read_config(path: Path, label: str) -> dict:
    config = read_config_json(path)
    if not isinstance(config, dict) or config.get("model_type", "resnet") != "resnet":
        raise WeightsError(f"{path}: not a transformers ResNet config (model_type 'resnet')")
    for option, expected in _TORCHVISION_CONFIG.items():
        if config.get(option, expected) != expected:
            raise WeightsError(
                f"{label}: its config.json sets {option}={json.dumps(config[option])}, so its "
                f"tensors compute another network than torchvision's ResNet ({option}="
                f"{json.dumps(expected)}); no model of this zoo matches it"
            )
    return config

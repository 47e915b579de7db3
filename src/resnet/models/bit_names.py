"""Google's Big Transfer checkpoints (``BiT-M-R50x1.npz`` ..) in our names, for ``bit_resnet*``.

The ``.npz`` files of google-research/big_transfer hold TensorFlow's names and layouts:

    resnet/root_block/standardized_conv2d/kernel              -> conv1
    resnet/block{S}/unit{BB}/{a,b,c}/standardized_conv2d/kernel -> layer{S}.{BB-1}.conv{1,2,3}
    resnet/block{S}/unit{BB}/{a,b,c}/group_norm/{gamma,beta}    -> layer{S}.{BB-1}.bn{1,2,3}
    resnet/block{S}/unit{BB}/a/proj/standardized_conv2d/kernel  -> layer{S}.{BB-1}.downsample.0
    resnet/group_norm/{gamma,beta}, resnet/head/conv2d/{kernel,bias} -> norm, fc

Kernels are stored height, width, in, out (HWIO) and become PyTorch's out, in, height, width;
the head's 1x1 kernel becomes a linear layer's (out, in). Unit ``a``'s norm comes before its
conv, as in every pre-activation block. timm's ``ResNetV2.load_pretrained`` reads the same files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

__all__ = ["is_bit_npz", "from_bit_npz_names"]

_PREFIX = "resnet/"
_UNIT = re.compile(
    r"^resnet/block(\d+)/unit(\d+)/([abc])/(proj/)?(standardized_conv2d|group_norm)/"
)
_PARTS = {"kernel": "weight", "gamma": "weight", "beta": "bias", "bias": "bias"}
_INDEX = {"a": 1, "b": 2, "c": 3}
_OUTSIDE_UNITS = {
    f"{_PREFIX}root_block/standardized_conv2d/": "conv1",
    f"{_PREFIX}group_norm/": "norm",
    f"{_PREFIX}head/conv2d/": "fc",
}


def is_bit_npz(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` holds BiT's TensorFlow names (its stem is ``resnet/root_block``)."""
    return f"{_PREFIX}root_block/standardized_conv2d/kernel" in state


def from_bit_npz_names(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` in our names and layouts; keys no rule knows keep theirs (reported unexpected)."""
    renamed = {}
    for key, value in state.items():
        name = _our_name(key)
        if name is None:
            renamed[key] = value
            continue
        if value.dim() == 4:  # HWIO -> OIHW
            value = value.permute(3, 2, 0, 1)
            if name == "fc.weight":
                value = value.flatten(1)
        renamed[name] = value.contiguous()
    return renamed


def _our_name(key: str) -> str | None:
    part = _PARTS.get(key.rsplit("/", 1)[-1])
    if part is None:
        return None
    match = _UNIT.match(key)
    if match:
        stage, unit, letter, projection, kind = match.groups()
        where = f"layer{int(stage)}.{int(unit) - 1}."
        if projection:
            return where + f"downsample.0.{part}"
        module = "conv" if kind == "standardized_conv2d" else "bn"
        return where + f"{module}{_INDEX[letter]}.{part}"
    prefix = key.rsplit("/", 1)[0] + "/"
    return f"{_OUTSIDE_UNITS[prefix]}.{part}" if prefix in _OUTSIDE_UNITS else None

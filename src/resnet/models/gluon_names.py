"""MXNet Gluon's ResNet v1 names (the ONNX model zoo's ``resnet18/34/50/101/152-v1-7.onnx``,
exported from Gluon's model zoo) renamed to ours.

Gluon names each layer by a counter per kind inside its scope: the stem is
``resnetv17_conv0`` and ``resnetv17_batchnorm0``, the classifier ``resnetv17_dense0``, and a
stage numbers its convolutions in the order its blocks made them, so ``stage1_conv0..2`` are the
first bottleneck's 1x1, 3x3, 1x1, ``stage1_conv3`` is its downsample (a 1x1 to the block's
output width) and ``stage1_conv4`` the second block's first. Each convolution has the BatchNorm
of the same number after it. Gluon's bottleneck strides its first 1x1 (the paper's v1) and gives
its two 1x1s a bias, which shifts the next BatchNorm's mean. Parameters end in ``_weight``,
``_bias``, ``_gamma``, ``_beta``, ``_running_mean``, ``_running_var``. Inputs are torchvision's
(RGB, ImageNet mean and std), and so are the zoo's evaluation crops (256, then 224).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from resnet.errors import WeightsError

__all__ = ["is_gluon_resnet", "from_gluon_names", "has_bottlenecks"]

_STEM = re.compile(r"(resnetv(\d)\d*_)conv0_weight")
_BN = {"gamma": "weight", "beta": "bias", "running_mean": "running_mean",
       "running_var": "running_var"}  # fmt: skip


def is_gluon_resnet(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` holds Gluon's ResNet names (v1 or v2)."""
    return any(_STEM.fullmatch(key) for key in state)


def has_bottlenecks(state: Mapping[str, Tensor]) -> bool:
    prefix = _prefix(state)
    return state[f"{prefix}stage1_conv0_weight"].shape[-1] == 1


def from_gluon_names(state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """``state`` in our names; every tensor is read, or ``WeightsError``."""
    prefix = _prefix(state)
    if not prefix.startswith("resnetv1"):
        raise WeightsError(
            f"{label}: Gluon's ResNet v2 ({prefix}..., the ONNX model zoo's resnet*-v2: a "
            "BatchNorm on the input image and pre-activation blocks), which no model here "
            "builds; use the v1 file (resnet50-v1-7.onnx)"
        )
    reader = _Reader(state, label)
    renamed = reader.conv_bn(prefix, 0, ("conv1", "bn1"))
    stage = 1
    while f"{prefix}stage{stage}_conv0_weight" in state:
        renamed.update(reader.stage(f"{prefix}stage{stage}_", stage, has_bottlenecks(state)))
        stage += 1
    for part in ("weight", "bias"):
        key = f"{prefix}dense0_{part}"
        if key in state:
            renamed[f"fc.{part}"] = state[key]
            reader.read.add(key)
    unread = [key for key in state if key not in reader.read]
    if unread:
        raise WeightsError(
            f"{label}: tensors outside Gluon's ResNet v1 ({', '.join(unread[:4])}); only its "
            "convolutions, BatchNorms and one dense classifier are read"
        )
    return renamed


def _prefix(state: Mapping[str, Tensor]) -> str:
    return next(m.group(1) for key in state if (m := _STEM.fullmatch(key)))


class _Reader:
    """Renames Gluon's tensors to ours, remembering which it read."""

    def __init__(self, state: Mapping[str, Tensor], label: str) -> None:
        self.state, self.label, self.read = state, label, set()

    def stage(self, scope: str, stage: int, bottleneck: bool) -> dict[str, Tensor]:
        """One stage's blocks, walking its numbered convolutions in the order Gluon made them."""
        body = 3 if bottleneck else 2
        renamed: dict[str, Tensor] = {}
        index, block = 0, 0
        while f"{scope}conv{index}_weight" in self.state:
            ours = f"layer{stage}.{block}."
            for i in range(body):
                renamed.update(self.conv_bn(scope, index + i, (f"{ours}conv{i + 1}",
                                                               f"{ours}bn{i + 1}")))  # fmt: skip
            index += body
            last = renamed[f"{ours}conv{body}.weight"]
            if block == 0 and self._is_downsample(scope, index, last):
                names = (f"{ours}downsample.0", f"{ours}downsample.1")
                renamed.update(self.conv_bn(scope, index, names))
                index += 1
            block += 1
        return renamed

    def _is_downsample(self, scope: str, index: int, last: Tensor) -> bool:
        """Whether the stage's next convolution is the first block's projection shortcut: a 1x1
        to the block's output width (the next block's first convolution is a 3x3, or a 1x1 to a
        quarter of that width)."""
        weight = self.state.get(f"{scope}conv{index}_weight")
        return weight is not None and weight.shape[-1] == 1 and weight.shape[0] == last.shape[0]

    def conv_bn(self, scope: str, index: int, names: tuple[str, str]) -> dict[str, Tensor]:
        """Convolution ``index`` and BatchNorm ``index`` in our names; the convolution's bias
        (Gluon's 1x1s have one) shifts the BatchNorm's mean: BN(Wx + b) with mean m is BN(Wx)
        with mean m - b."""
        conv, norm = f"{scope}conv{index}_", f"{scope}batchnorm{index}_"
        keys = [f"{conv}weight", *(f"{norm}{part}" for part in _BN)]
        missing = [key for key in keys if key not in self.state]
        if missing:
            raise WeightsError(
                f"{self.label}: Gluon's ResNet names, but without {', '.join(missing[:3])}; "
                "the file is incomplete or another network's"
            )
        self.read.update(keys)
        renamed = {f"{names[0]}.weight": self.state[keys[0]]}
        for part, ours in _BN.items():
            renamed[f"{names[1]}.{ours}"] = self.state[f"{norm}{part}"]
        bias = self.state.get(f"{conv}bias")
        if bias is not None:
            self.read.add(f"{conv}bias")
            renamed[f"{names[1]}.running_mean"] = renamed[f"{names[1]}.running_mean"] - bias
        return renamed

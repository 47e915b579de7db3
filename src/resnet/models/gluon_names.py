"""MXNet Gluon's ResNets in our names: Gluon's model zoo v1 (as MXNet saved it, and as the ONNX
model zoo's ``resnet18/34/50/101/152-v1-7.onnx`` exported it) and GluonCV's ``resnet*_v1b``,
``_v1c``, ``_v1d``, ``_v1s``.

Gluon's model zoo names its layers in one of three ways, by what saved them:

- counted (``collect_params``, the ONNX export, a Module checkpoint's ``arg:``/``aux:`` names):
  a counter per kind inside each scope, after the net's prefix (``resnetv17_``, dropped by
  ``save_params``): the stem is ``conv0`` and ``batchnorm0``, the classifier ``dense0``, and a
  stage numbers its convolutions in the order its blocks made them, so ``stage1_conv0..2`` are
  the first bottleneck's 1x1, 3x3, 1x1, ``stage1_conv3`` its downsample (a 1x1 to the block's
  width) and ``stage1_conv4`` the second block's first; each convolution has the BatchNorm of
  its number after it;
- structural (``save_parameters``, MXNet 1.3 on): ``features.0`` (stem conv), ``features.1``
  (its BatchNorm), ``features.4..7`` the stages, whose blocks have ``body.0/3/6`` convolutions,
  ``body.1/4/7`` BatchNorms and ``downsample.0/1``; ``output`` the classifier.

Parameters end in ``weight``, ``bias``, ``gamma``, ``beta``, ``running_mean``, ``running_var``.
Gluon's bottleneck strides its first 1x1 (the paper's v1) and gives its two 1x1s a bias, which
shifts the next BatchNorm's mean. Gluon's v2 (``resnet*_v2``, the ONNX zoo's ``resnet*-v2-7``)
loads into ``gluon_resnet*_v2``: ``batchnorm0`` (``features.0``) normalises the input image
without scale or shift, ``conv0`` and ``batchnorm1`` are the stem, each pre-activation block
numbers a BatchNorm before each convolution (``bn1``, ``conv1``, ...: ``stage1_batchnorm0``,
``stage1_conv0``, ...), the first block's downsample convolution after its body, and
``batchnorm2`` (``features.9``) is the final norm; no convolution has a bias. GluonCV's v1b
family is torchvision's and timm's nets in their own names (``conv1``, ``bn1``,
``layer1.0.conv1``), BatchNorms with ``gamma`` and ``beta``: v1b is resnet50, v1c resnet50c, v1d
resnet50d, v1s resnet50s. Inputs are torchvision's (RGB, ImageNet mean and std; resize 256, crop
224).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from resnet.errors import WeightsError

__all__ = [
    "is_gluon_resnet",
    "is_gluon_v2",
    "from_gluon_names",
    "has_bottlenecks",
    "is_gluoncv_resnet",
    "from_gluoncv_names",
]

_STEM = re.compile(r"((?:resnetv\d+_)?)conv0_weight")
_STRUCTURAL = re.compile(r"features\.(\d+)\.(\d+)\.(body|downsample)\.(\d+)\.(\w+)")
_STRUCTURAL_V2 = re.compile(r"features\.(\d+)\.(\d+)\.(bn\d|conv\d|downsample)\.(\w+)")
_BN = {"gamma": "weight", "beta": "bias", "running_mean": "running_mean",
       "running_var": "running_var"}  # fmt: skip


def is_gluon_resnet(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` holds Gluon's model zoo ResNet names (v1 or v2, counted or
    structural)."""
    if "features.1.gamma" in state or "features.0.gamma" in state:  # MXNet's BatchNorm names
        return any(key.startswith(("features.4.0.", "features.5.0.")) for key in state)
    prefix = _prefix(state)
    return prefix is not None and f"{prefix}stage1_conv0_weight" in state


def is_gluon_v2(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` holds Gluon's ResNet v2 (an input BatchNorm before the stem conv)."""
    if "features.0.gamma" in state:
        return True
    return f"{_prefix(state) or ''}batchnorm1_gamma" in state  # v1 has one stem BatchNorm


def has_bottlenecks(state: Mapping[str, Tensor]) -> bool:
    """Whether the net is built of bottlenecks (its first block's first convolution a 1x1)."""
    for first in ("features.4.0.body.0.weight", "features.5.0.conv1.weight"):
        if first in state:
            return state[first].shape[-1] == 1
    return state[f"{_prefix(state)}stage1_conv0_weight"].shape[-1] == 1


def from_gluon_names(state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """``state`` in our names; every tensor is read, or ``WeightsError``."""
    prefix = _prefix(state) or ""
    reader, version = _Reader(state, label), "v2" if is_gluon_v2(state) else "v1"
    if "features.0.gamma" in state:
        renamed = reader.structural_v2()
    elif version == "v2":
        renamed = reader.counted_v2(prefix, has_bottlenecks(state))
    elif "features.4.0.body.0.weight" in state:
        renamed = reader.structural()
    else:
        renamed = reader.counted(prefix, has_bottlenecks(state))
    unread = [key for key in state if key not in reader.read]
    if unread:
        raise WeightsError(
            f"{label}: tensors outside Gluon's ResNet {version} ({', '.join(unread[:4])}); only "
            "its convolutions, BatchNorms and one dense classifier are read"
        )
    return renamed


def _prefix(state: Mapping[str, Tensor]) -> str | None:
    return next((m.group(1) for key in state if (m := _STEM.fullmatch(key))), None)


class _Reader:
    """Renames Gluon's tensors to ours, remembering which it read."""

    def __init__(self, state: Mapping[str, Tensor], label: str) -> None:
        self.state, self.label, self.read = state, label, set()

    def counted(self, prefix: str, bottleneck: bool) -> dict[str, Tensor]:
        renamed = self.conv_bn(f"{prefix}conv0_", f"{prefix}batchnorm0_", ("conv1", "bn1"))
        stage = 1
        while f"{prefix}stage{stage}_conv0_weight" in self.state:
            renamed.update(self._stage(f"{prefix}stage{stage}_", stage, bottleneck))
            stage += 1
        renamed.update(self.dense(f"{prefix}dense0_"))
        return renamed

    def _stage(self, scope: str, stage: int, bottleneck: bool) -> dict[str, Tensor]:
        """One stage's blocks, walking its numbered convolutions in the order Gluon made them."""
        body = 3 if bottleneck else 2
        renamed: dict[str, Tensor] = {}
        index, block = 0, 0
        while f"{scope}conv{index}_weight" in self.state:
            ours = f"layer{stage}.{block}."
            for i in range(body):
                names = (f"{ours}conv{i + 1}", f"{ours}bn{i + 1}")
                renamed.update(self.conv_bn(f"{scope}conv{index + i}_",
                                            f"{scope}batchnorm{index + i}_", names))  # fmt: skip
            index += body
            last = renamed[f"{ours}conv{body}.weight"]
            if block == 0 and self._is_downsample(scope, index, last):
                names = (f"{ours}downsample.0", f"{ours}downsample.1")
                renamed.update(self.conv_bn(f"{scope}conv{index}_", f"{scope}batchnorm{index}_",
                                            names))  # fmt: skip
                index += 1
            block += 1
        return renamed

    def _is_downsample(self, scope: str, index: int, last: Tensor) -> bool:
        """Whether the stage's next convolution is the first block's projection shortcut: a 1x1
        to the block's output width (the next block's first convolution is a 3x3, or a 1x1 to a
        quarter of that width)."""
        weight = self.state.get(f"{scope}conv{index}_weight")
        return weight is not None and weight.shape[-1] == 1 and weight.shape[0] == last.shape[0]

    def structural(self) -> dict[str, Tensor]:
        renamed = self.conv_bn("features.0.", "features.1.", ("conv1", "bn1"))
        for key in self.state:
            match = _STRUCTURAL.fullmatch(key)
            if match is None or match.group(5) != "weight" or int(match.group(4)) % 3:
                continue  # one convolution at a time: body.0/3/6, downsample.0
            stage, block, branch, index = int(match[1]) - 3, match[2], match[3], int(match[4])
            ours = f"layer{stage}.{block}."
            names = (
                (f"{ours}downsample.0", f"{ours}downsample.1")
                if branch == "downsample"
                else (f"{ours}conv{index // 3 + 1}", f"{ours}bn{index // 3 + 1}")
            )
            layer = f"features.{match[1]}.{block}.{branch}."
            renamed.update(self.conv_bn(f"{layer}{index}.", f"{layer}{index + 1}.", names))
        renamed.update(self.dense("output."))
        return renamed

    def counted_v2(self, prefix: str, bottleneck: bool) -> dict[str, Tensor]:
        renamed = self.input_norm(f"{prefix}batchnorm0_")
        renamed.update(self.conv_bn(f"{prefix}conv0_", f"{prefix}batchnorm1_", ("conv1", "bn1")))
        stage, body = 1, 3 if bottleneck else 2
        while f"{prefix}stage{stage}_conv0_weight" in self.state:
            scope, conv, block = f"{prefix}stage{stage}_", 0, 0
            while f"{scope}batchnorm{block * body}_gamma" in self.state:
                ours = f"layer{stage}.{block}."
                for i in range(body):
                    renamed.update(
                        self.norm(f"{scope}batchnorm{block * body + i}_", f"{ours}bn{i + 1}")
                    )
                    renamed.update(self.conv(f"{scope}conv{conv + i}_", f"{ours}conv{i + 1}"))
                conv += body
                last = renamed[f"{ours}conv{body}.weight"]
                if block == 0 and self._is_downsample(scope, conv, last):
                    renamed.update(self.conv(f"{scope}conv{conv}_", f"{ours}downsample.0"))
                    conv += 1
                block += 1
            stage += 1
        renamed.update(self.norm(f"{prefix}batchnorm2_", "norm"))
        renamed.update(self.dense(f"{prefix}dense0_"))
        return renamed

    def structural_v2(self) -> dict[str, Tensor]:
        renamed = self.input_norm("features.0.")
        renamed.update(self.conv_bn("features.1.", "features.2.", ("conv1", "bn1")))
        stages = set()
        for key in self.state:
            match = _STRUCTURAL_V2.fullmatch(key)
            if match is None or match[4] not in ("weight", "gamma"):
                continue  # one layer at a time: a convolution's weight, a BatchNorm's gamma
            stages.add(int(match[1]))
            ours, layer = f"layer{int(match[1]) - 4}.{match[2]}.", key.removesuffix(match[4])
            if match[3].startswith("bn"):
                renamed.update(self.norm(layer, ours + match[3]))
            else:
                name = "downsample.0" if match[3] == "downsample" else match[3]
                renamed.update(self.conv(layer, ours + name))
        renamed.update(self.norm(f"features.{max(stages, default=4) + 1}.", "norm"))
        renamed.update(self.dense("output."))
        return renamed

    def input_norm(self, norm: str) -> dict[str, Tensor]:
        """v2's input BatchNorm (``scale=False, center=False``): its statistics, with the scale
        1 and shift 0 that Gluon fixes checked, since ``input_bn`` has neither."""
        found = self.norm(norm, "input_bn")
        scale, shift = found.pop("input_bn.weight"), found.pop("input_bn.bias")
        if not (bool((scale == 1).all()) and bool((shift == 0).all())):
            raise WeightsError(
                f"{self.label}: Gluon's ResNet v2, but its input BatchNorm ({norm}) has a scale "
                "or shift; Gluon's fixes them at 1 and 0 (scale=False, center=False)"
            )
        return found

    def dense(self, layer: str) -> dict[str, Tensor]:
        found = {}
        for part in ("weight", "bias"):
            if f"{layer}{part}" in self.state:
                found[f"fc.{part}"] = self.state[f"{layer}{part}"]
                self.read.add(f"{layer}{part}")
        return found

    def conv_bn(self, conv: str, norm: str, names: tuple[str, str]) -> dict[str, Tensor]:
        """A convolution and its BatchNorm in our names; the convolution's bias (Gluon's 1x1s
        have one) shifts the BatchNorm's mean: BN(Wx + b) with mean m is BN(Wx) with mean
        m - b."""
        renamed = {**self.conv(conv, names[0]), **self.norm(norm, names[1])}
        bias = self.state.get(f"{conv}bias")
        if bias is not None:
            self.read.add(f"{conv}bias")
            renamed[f"{names[1]}.running_mean"] = renamed[f"{names[1]}.running_mean"] - bias
        return renamed

    def conv(self, conv: str, ours: str) -> dict[str, Tensor]:
        return {f"{ours}.weight": self._take([f"{conv}weight"])[0]}

    def norm(self, norm: str, ours: str) -> dict[str, Tensor]:
        values = self._take([f"{norm}{part}" for part in _BN])
        return {f"{ours}.{name}": value for name, value in zip(_BN.values(), values)}

    def _take(self, keys: list[str]) -> list[Tensor]:
        missing = [key for key in keys if key not in self.state]
        if missing:
            raise WeightsError(
                f"{self.label}: Gluon's ResNet names, but without {', '.join(missing[:3])}; "
                "the file is incomplete or another network's"
            )
        self.read.update(keys)
        return [self.state[key] for key in keys]


def is_gluoncv_resnet(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` holds GluonCV's v1b-family names (torchvision's, BatchNorms with
    ``gamma`` and ``beta``)."""
    return "bn1.gamma" in state and any(key.startswith("layer1.0.") for key in state)


def from_gluoncv_names(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """GluonCV's BatchNorm ``gamma`` and ``beta`` as ``weight`` and ``bias``; the rest as is."""
    renamed = {}
    for key, value in state.items():
        stem, _, part = key.rpartition(".")
        renamed[f"{stem}.{_BN.get(part, part)}" if part in ("gamma", "beta") else key] = value
    return renamed

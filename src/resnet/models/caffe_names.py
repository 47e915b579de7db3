"""The paper's own ResNets, as its authors released them in Caffe, in our names.

KaimingHe/deep-residual-networks holds ``ResNet-50-model.caffemodel`` (and -101, -152), the
networks of He et al. 2015 as they were trained. ``caffe_proto.read_caffemodel`` reads their
blobs; MSRA named the layers of each bottleneck ``res{S}{B}`` (S the stage 2-5, B ``a``, ``b``,
``c`` ... or, in ResNet-101/152's long stages, ``a``, ``b1``, ``b2`` ...):

    conv1, bn_conv1 + scale_conv1                      -> conv1, bn1
    res{S}{B}_branch2a/2b/2c, bn.. + scale..            -> layer{S-1}.{i}.conv1..3, bn1..3
    res{S}{B}_branch1, bn{S}{B}_branch1 + scale..       -> layer{S-1}.{i}.downsample.0, .1
    fc1000                                             -> fc

Caffe's ``BatchNorm`` layer keeps the running statistics multiplied by a factor (its third
blob) and a ``Scale`` layer the learned affine: the two become one BatchNorm. A convolution's
bias (ResNet-50's conv1 has one) becomes a shift of the statistics of the BatchNorm after it.
Files of basic blocks (``_branch2a``, ``_branch2b`` only: third-party ResNet-18/34 in MSRA's
names) read the same way.

What the names cannot show: the bottlenecks stride their first 1x1 (``stride_in_1x1=True``, the
paper's v1; an ``Assumption``), and the stem pools as Caffe did (``stem_pool="max_ceil"``, the
same output size as torchvision's and a fine-tuner's free choice). Their input is Caffe's too:
BGR, 0-255, the per-channel mean subtracted (``CAFFE_MEAN_BGR``, as Keras's "caffe" mode and most
ports use). That is folded into conv1 and bn1, so the loaded net takes what torchvision's
weights take, RGB in ``(x / 255 - mean) / std`` with ImageNet's ``TORCHVISION_MEAN`` and
``TORCHVISION_STD``: exactly, except in the 3-pixel border, where conv1's zero padding now
stands for the ImageNet mean colour instead of Caffe's (half a grey level apart).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor

from resnet.errors import WeightsError

__all__ = [
    "is_caffe_blobs",
    "from_msra_caffe_names",
    "strides_first_1x1",
    "fold_caffe_input",
    "CAFFE_MEAN_BGR",
    "TORCHVISION_MEAN",
    "TORCHVISION_STD",
    "INPUT_NOTE",
]

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
INPUT_NOTE = (
    "Caffe's BGR 0-255 mean-subtracted input folded into conv1 (feed it ImageNet-normalised RGB "
    "as torchvision's weights take)"
)
_BLOCK = re.compile(r"res(\d)([a-z])(\d*)_branch(1|2a|2b|2c)")
_BRANCHES = {"2a": ("conv1", "bn1"), "2b": ("conv2", "bn2"), "2c": ("conv3", "bn3")}
_SHORTCUT = ("downsample.0", "downsample.1")


def is_caffe_blobs(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is what ``read_caffemodel`` returns (every key ``LAYER.blobs.N``)."""
    return bool(state) and all(re.fullmatch(r".+\.blobs\.\d+", key) for key in state)


def strides_first_1x1(state: Mapping[str, Tensor]) -> bool:
    """Whether the file holds bottlenecks (a ``_branch2c``): MSRA's stride their first 1x1."""
    return any(key.split(".blobs.")[0].endswith("_branch2c") for key in state)


def from_msra_caffe_names(state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """``state`` (``LAYER.blobs.N`` keys) in our names, its input convention folded into the
    stem. ``WeightsError`` for a Caffe model not in MSRA's ResNet names."""
    blobs = _by_layer(state)
    if "conv1" not in blobs or not any(map(_BLOCK.fullmatch, blobs)):
        shown = ", ".join(list(blobs)[:4])
        raise WeightsError(
            f"{label}: a Caffe model whose layers ({shown}, ...) are not MSRA's ResNet names "
            "(conv1, res2a_branch2a, fc1000: KaimingHe/deep-residual-networks); other Caffe "
            "nets are not read"
        )
    renamed = _batch_norm(blobs, "conv1", "bn_conv1", "scale_conv1", ("conv1", "bn1"), label)
    fold_caffe_input(renamed)
    read = {"conv1", "bn_conv1", "scale_conv1", "fc1000"}
    for layer in blobs:
        match = _BLOCK.fullmatch(layer)
        if match is None:
            continue
        stage, letter, number, branch = match.groups()
        block = int(number) if number else ord(letter) - ord("a")
        names = _SHORTCUT if branch == "1" else _BRANCHES[branch]
        prefix = f"layer{int(stage) - 1}.{block}."
        suffix = f"{stage}{letter}{number}_branch{branch}"
        found = _batch_norm(blobs, layer, f"bn{suffix}", f"scale{suffix}", names, label)
        renamed.update({prefix + key: value for key, value in found.items()})
        read.update({layer, f"bn{suffix}", f"scale{suffix}"})
    unread = [layer for layer in blobs if layer not in read]
    if unread:
        raise WeightsError(
            f"{label}: layers outside MSRA's ResNet ({', '.join(unread[:4])}); only conv1, "
            "res*/bn*/scale* and fc1000 are read, so rename a fine-tuned classifier fc1000"
        )
    if "fc1000" in blobs:  # a file without it is a backbone
        weight, bias = _blobs(blobs, "fc1000", 2, label)
        renamed["fc.weight"] = weight.reshape(weight.shape[-2], weight.shape[-1])
        renamed["fc.bias"] = bias.reshape(-1)
    return renamed


def _by_layer(state: Mapping[str, Tensor]) -> dict[str, list[Tensor]]:
    """Each layer's blobs in their order (``BLOB_KEY``'s index)."""
    indexed: dict[str, dict[int, Tensor]] = {}
    for key, value in state.items():
        layer, index = key.rsplit(".blobs.", 1)
        indexed.setdefault(layer, {})[int(index)] = value
    return {layer: [found[i] for i in sorted(found)] for layer, found in indexed.items()}


def _blobs(blobs: dict[str, list[Tensor]], layer: str, count: int, label: str) -> list[Tensor]:
    found = blobs.get(layer)
    if found is None or len(found) < count:
        held = "no layer" if found is None else f"{len(found)} blobs"
        raise WeightsError(
            f"{label}: MSRA's ResNet names, but {layer!r} has {held} (expected {count}); "
            "the file is incomplete or another network's"
        )
    return found


def _batch_norm(
    blobs: dict[str, list[Tensor]],
    conv: str,
    norm: str,
    scale: str,
    names: tuple[str, str],
    label: str,
) -> dict[str, Tensor]:
    """A convolution, and Caffe's BatchNorm + Scale after it as one BatchNorm, in our names;
    the convolution's bias, if it has one, shifts the statistics."""
    conv_blobs = _blobs(blobs, conv, 1, label)
    mean, var, factor = (t.reshape(-1) for t in _blobs(blobs, norm, 3, label)[:3])
    gamma, beta = (t.reshape(-1) for t in _blobs(blobs, scale, 2, label)[:2])
    # Caffe divides by the factor (a running sum of its decay weights), 0 meaning "no data".
    factor = torch.where(factor == 0, torch.zeros_like(factor), 1 / factor)
    mean = mean * factor
    if len(conv_blobs) > 1:
        mean = mean - conv_blobs[1].reshape(-1)
    return {
        f"{names[0]}.weight": conv_blobs[0],
        f"{names[1]}.weight": gamma,
        f"{names[1]}.bias": beta,
        f"{names[1]}.running_mean": mean,
        f"{names[1]}.running_var": var * factor,
    }


def fold_caffe_input(
    state: dict[str, Tensor], mean_bgr: tuple[float, float, float] = CAFFE_MEAN_BGR
) -> None:
    """conv1 and bn1 (our names) rewritten in place to take torchvision's input: in Caffe's (and
    Keras's "caffe" mode, and Detectron's with its ``mean_bgr``), channel c (BGR) is
    ``255 * (x_n * std + mean) - mean_bgr``, with ``x_n`` our normalised RGB channel."""
    if state["conv1.weight"].shape[1] != 3:
        raise WeightsError(
            f"a Caffe ResNet whose conv1 takes {state['conv1.weight'].shape[1]} channels; only "
            "BGR (3-channel) stems are converted"
        )
    weight = state["conv1.weight"].double().flip(1)  # BGR -> RGB input channels
    std, mean, caffe_mean = (
        torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1)
        for v in (TORCHVISION_STD, TORCHVISION_MEAN, mean_bgr[::-1])
    )
    offset = (weight * (255 * mean - caffe_mean)).sum(dim=(1, 2, 3))
    state["conv1.weight"] = (weight * 255 * std).float()
    state["bn1.running_mean"] = (state["bn1.running_mean"].double() - offset).float()

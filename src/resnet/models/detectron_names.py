"""Detectron's ImageNet ResNets (``R-50.pkl``, ``R-101.pkl``: MSRA's Caffe nets in Caffe2) in
our names.

Detectron and detectron2 start every ResNet detector from these files
(``detectron2://ImageNetPretrained/MSRA/R-50.pkl``). Each is a pickle of a dict of numpy arrays
(Detectron's under ``blobs``, detectron2's under ``model``), in Caffe2's names:

    conv1_w, res_conv1_bn_s/_b                         -> conv1, bn1
    res{S}_{B}_branch2a/2b/2c_w, .._bn_s/_b            -> layer{S-1}.{B}.conv1..3, bn1..3
    res{S}_{B}_branch1_w, res{S}_{B}_branch1_bn_s/_b   -> layer{S-1}.{B}.downsample.0, .1
    fc1000_w, fc1000_b                                 -> fc

BatchNorm was folded into an affine per channel (Caffe2's AffineChannel, ``_bn_s`` and
``_bn_b``): it becomes a BatchNorm whose statistics (mean 0, variance ``1 - eps``) leave it that
affine exactly. The nets are the paper's v1 (``stride_in_1x1=True``: detectron2's
``STRIDE_IN_1X1``, required) with torchvision's stem pool, and take Detectron's input (BGR,
0-255, ``DETECTRON_MEAN_BGR`` subtracted, which is 255 times torchvision's mean): it is folded
into conv1 (``caffe_names.fold_caffe_input``), exactly, border included.

A pickle can run code when loaded, so it is read by ``array_pickle.read_array_pickle``, which
unpickles only dicts, strings, numbers and numpy arrays. FAIR's ResNeXt files (``X-101-32x8d.pkl``:
another input convention) and group-norm ones (``R-50-GN.pkl``) are refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor

from resnet.errors import WeightsError
from resnet.models.caffe_names import fold_caffe_input

__all__ = [
    "is_detectron_resnet",
    "from_detectron_names",
    "DETECTRON_MEAN_BGR",
]

DETECTRON_MEAN_BGR = (103.530, 116.280, 123.675)
_EPS = 1e-5  # BatchNorm's, which the affine's variance cancels
_BLOCK = re.compile(r"res(\d)_(\d+)_branch(1|2a|2b|2c)_w")
_BRANCHES = {"1": ("downsample.0", "downsample.1"), "2a": ("conv1", "bn1")}
_BRANCHES.update({"2b": ("conv2", "bn2"), "2c": ("conv3", "bn3")})


def is_detectron_resnet(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` holds Detectron's Caffe2 ResNet names."""
    return "conv1_w" in state and any(key.startswith("res_conv1_") for key in state)


def from_detectron_names(state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """``state`` in our names, Detectron's input convention folded into the stem."""
    if "res_conv1_bn_s" not in state or "res2_0_branch2b_w" not in state:
        shown = ", ".join([k for k in state if k.startswith(("res_conv1", "res2_0"))][:4])
        raise WeightsError(
            f"{label}: Detectron's names but not its batch-norm ResNet ({shown}): group-norm "
            "and other variants are not read"
        )
    conv2 = state["res2_0_branch2b_w"]
    if conv2.shape[1] != conv2.shape[0]:
        raise WeightsError(
            f"{label}: FAIR's ResNeXt in Detectron's names (grouped 3x3s), whose input "
            "convention is not MSRA's; load a torchvision or timm ResNeXt file instead"
        )
    renamed = _conv_affine(state, "conv1", "res_conv1_bn", ("conv1", "bn1"), label)
    fold_caffe_input(renamed, DETECTRON_MEAN_BGR)
    read = {"conv1_w", "conv1_b", "res_conv1_bn_s", "res_conv1_bn_b", "fc1000_w", "fc1000_b"}
    for key in state:
        match = _BLOCK.fullmatch(key)
        if match is None:
            continue
        stage, block, branch = match.groups()
        conv = key.removesuffix("_w")
        found = _conv_affine(state, conv, f"{conv}_bn", _BRANCHES[branch], label)
        prefix = f"layer{int(stage) - 1}.{block}."
        renamed.update({prefix + name: value for name, value in found.items()})
        read.update({key, f"{conv}_b", f"{conv}_bn_s", f"{conv}_bn_b"})
    unread = [key for key in state if key not in read]
    if unread:
        raise WeightsError(
            f"{label}: arrays outside Detectron's ImageNet ResNet ({', '.join(unread[:4])}): a "
            "detector's heads or another network's; load the ImageNet file (R-50.pkl)"
        )
    if "fc1000_w" in state:
        renamed["fc.weight"] = state["fc1000_w"].reshape(state["fc1000_w"].shape[0], -1)
        renamed["fc.bias"] = state["fc1000_b"]
    return renamed


def _conv_affine(
    state: Mapping[str, Tensor], conv: str, affine: str, names: tuple[str, str], label: str
) -> dict[str, Tensor]:
    keys = [f"{conv}_w", f"{affine}_s", f"{affine}_b"]
    missing = [key for key in keys if key not in state]
    if missing:
        raise WeightsError(
            f"{label}: Detectron's ResNet names, but without {', '.join(missing)}; the file is "
            "incomplete or another network's"
        )
    weight, scale, shift = (state[key] for key in keys)
    if f"{conv}_b" in state:  # a convolution's bias moves behind the affine
        shift = shift + scale * state[f"{conv}_b"]
    return {
        f"{names[0]}.weight": weight,
        f"{names[1]}.weight": scale,
        f"{names[1]}.bias": shift,
        f"{names[1]}.running_mean": torch.zeros_like(scale),
        f"{names[1]}.running_var": torch.full_like(scale, 1 - _EPS),
    }

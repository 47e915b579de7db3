"""Keras's ResNet50/101/152 (``keras.applications``) weight files in our names.

``resnet50_weights_tf_dim_ordering_tf_kernels.h5`` (and ``_notop``, and 101/152) are HDF5 files
in Keras's weights format: the root lists ``layer_names``, each layer's group lists its
``weight_names`` (``conv1_conv/kernel:0``; Keras 3 drops the ``:0``), and each name is a dataset.
``read_keras_h5`` reads them (with h5py) as ``{"conv1_conv/kernel": tensor}``:

    conv1_conv, conv1_bn                       -> conv1, bn1
    conv{S}_block{B}_{1,2,3}_conv, .._bn        -> layer{S-1}.{B-1}.conv1..3, bn1..3
    conv{S}_block{B}_0_conv, .._0_bn            -> layer{S-1}.{B-1}.downsample.0, .1
    predictions (without it: a _notop file)    -> fc

Kernels are HWIO (a Dense kernel in x out) and become OIHW (out x in). Every convolution has a
bias, which becomes a shift of the next BatchNorm's statistics, and Keras's BatchNorm epsilon
(1.001e-5) becomes ours (1e-5) by adding the difference to the variances: both exact. These are
the paper's v1 (``stride_in_1x1=True``, required) with torchvision's stem pool, ported by Keras
from MSRA's Caffe models, and they take Keras's "caffe" input (BGR, 0-255, the mean subtracted),
which is folded into conv1 as for the Caffe files (``caffe_names.fold_caffe_input``).
ResNet50V2/101V2/152V2 (pre-activation, each stage strided in its last block, a ``post_bn``) are
built by no model here and are refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from resnet.errors import WeightsError
from resnet.models.caffe_names import fold_caffe_input

__all__ = ["read_keras_h5", "is_keras_resnet", "from_keras_names", "KERAS_SUFFIXES"]

KERAS_SUFFIXES = (".h5", ".hdf5")
_KERAS_EPSILON = 1.001e-5
_TORCH_EPSILON = 1e-5
_LAYER = re.compile(r"conv(\d)_block(\d+)_(\d)_(conv|bn)")
_BRANCHES = {"0": ("downsample.0", "downsample.1"), "1": ("conv1", "bn1")}
_BRANCHES.update({"2": ("conv2", "bn2"), "3": ("conv3", "bn3")})


def read_keras_h5(path: Path) -> dict[str, Tensor]:
    """``{"LAYER/WEIGHT": tensor}`` (``:0`` dropped) of a Keras weights file, as stored."""
    try:
        import h5py
    except ImportError:
        raise WeightsError(
            f"{path}: reading Keras's .h5 weight files needs h5py: pip install h5py"
        ) from None
    with h5py.File(path, "r") as file:
        root = file.get("model_weights", file)  # a whole saved model keeps them there
        if "layer_names" not in root.attrs and "layers" in root and "vars" in root:
            raise WeightsError(
                f"{path}: Keras 3's .weights.h5, which stores layers by class (conv2d_12), not "
                "by name; save the model with Keras's model.save('model.h5'), which keeps them"
            )
        if "layer_names" not in root.attrs:
            raise WeightsError(
                f"{path}: an HDF5 file without Keras's layer_names; pass keras.applications' "
                "file, or a model saved with Keras's model.save('model.h5')"
            )
        state = {}
        for layer in map(_text, root.attrs["layer_names"]):
            for weight in map(_text, root[layer].attrs["weight_names"]):
                name = weight.removesuffix(":0")
                state[name] = torch.from_numpy(np.asarray(root[layer][weight], dtype=np.float32))
    return state


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def is_keras_resnet(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` holds Keras's ResNet names (v1 or v2)."""
    return "conv1_conv/kernel" in state and "conv2_block1_1_conv/kernel" in state


def from_keras_names(state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """``state`` in our names, its input convention folded into the stem."""
    if "post_bn/gamma" in state:
        raise WeightsError(
            f"{label}: Keras's ResNet50V2/101V2/152V2 (pre-activation, each stage strided in its "
            "last block), which no model here builds; use Keras's ResNet50/101/152 file"
        )
    renamed = _conv_bn(state, "conv1_conv", "conv1_bn", ("conv1", "bn1"), label)
    fold_caffe_input(renamed)
    layers = list(dict.fromkeys(key.split("/")[0] for key in state))
    read = {"conv1_conv", "conv1_bn"}
    for layer in layers:
        match = _LAYER.fullmatch(layer)
        if match is None or match.group(4) != "conv":
            continue
        stage, block, branch, _ = match.groups()
        prefix = f"layer{int(stage) - 1}.{int(block) - 1}."
        norm = layer.removesuffix("_conv") + "_bn"
        found = _conv_bn(state, layer, norm, _BRANCHES[branch], label)
        renamed.update({prefix + key: value for key, value in found.items()})
        read.update({layer, norm})
    head = _classifier(state, [layer for layer in layers if layer not in read], label)
    if head is not None:
        renamed["fc.weight"] = state[f"{head}/kernel"].T.contiguous()
        renamed["fc.bias"] = state[f"{head}/bias"]
    return renamed


def _classifier(state: Mapping[str, Tensor], unread: list[str], label: str) -> Optional[str]:
    """The one Dense layer left (``predictions``, or the head a fine-tuner put on ``_notop``'s
    pooled features), or None for a backbone; ``WeightsError`` for anything else."""
    dense = len(unread) == 1 and state.get(f"{unread[0]}/kernel", torch.zeros(0)).dim() == 2
    if not unread or (dense and f"{unread[0]}/bias" in state):
        return unread[0] if unread else None
    raise WeightsError(
        f"{label}: layers outside keras.applications' ResNet ({', '.join(unread[:4])}); only "
        "its own layers and one Dense classifier on the pooled features are read"
    )


def _conv_bn(
    state: Mapping[str, Tensor], conv: str, norm: str, names: tuple[str, str], label: str
) -> dict[str, Tensor]:
    """A convolution and the BatchNormalization after it in our names; the convolution's bias
    shifts the statistics, and the epsilons are made equal through the variances."""
    keys = [f"{conv}/kernel", f"{conv}/bias"]
    keys += [f"{norm}/{w}" for w in ("gamma", "beta", "moving_mean", "moving_variance")]
    missing = [key for key in keys if key not in state]
    if missing:
        raise WeightsError(
            f"{label}: Keras's ResNet names, but without {', '.join(missing[:3])}; the file is "
            "incomplete or another network's"
        )
    kernel, bias, gamma, beta, mean, var = (state[key] for key in keys)
    return {
        f"{names[0]}.weight": kernel.permute(3, 2, 0, 1).contiguous(),
        f"{names[1]}.weight": gamma,
        f"{names[1]}.bias": beta,
        f"{names[1]}.running_mean": mean - bias,
        f"{names[1]}.running_var": var + (_KERAS_EPSILON - _TORCH_EPSILON),
    }

"""Reading weight files of every format this package loads into one mapping of arrays.

Each format has its reader, chosen by suffix (``_READERS``); any other file is a ``torch.save``
checkpoint, read with ``weights_only=True``. No reader can run code held in a file: the array
pickles are read by an unpickler of arrays only, and TorchScript archives are refused.
``pretrained.py`` makes what they read fit a model.
"""

from __future__ import annotations

import argparse
import contextlib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from resnet.errors import WeightsError
from resnet.models.array_pickle import read_array_pickle
from resnet.models.caffe_proto import read_caffemodel
from resnet.models.hf_names import saved_weights
from resnet.models.keras_names import KERAS_SUFFIXES, read_keras_h5
from resnet.models.mxnet_params import read_mxnet_params
from resnet.models.onnx_initializers import read_onnx_initializers

__all__ = ["read_weight_file", "weights_path", "WEIGHT_SUFFIXES"]


def weights_path(path: Path) -> Path:
    """``path``, or the weight file of a transformers ``save_pretrained`` folder."""
    if path.is_dir():
        found = saved_weights(path)
        if found is None:
            raise WeightsError(
                f"{path}: a folder without model.safetensors or pytorch_model.bin; pass the "
                "weight file itself (.pth, .safetensors)"
            )
        return found
    return path


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def _read_npz(path: Path) -> dict[str, Tensor]:  # Google's BiT checkpoints (``bit_names.py``)
    with np.load(path, allow_pickle=False) as arrays:
        return {name: torch.from_numpy(arrays[name]) for name in arrays.files}


# Each format's reader by suffix; any other file is a torch.save checkpoint (.pth, .pt, ...).
_READERS = {
    ".safetensors": _read_safetensors,
    ".caffemodel": read_caffemodel,  # the paper's own nets (``caffe_names.py``)
    **dict.fromkeys(KERAS_SUFFIXES, read_keras_h5),  # keras.applications' (``keras_names.py``)
    ".pkl": read_array_pickle,  # Detectron's, detectron2's (``detectron_names.py``, ``...2_names``)
    ".pdparams": read_array_pickle,  # PaddleClas's (``paddle_names.py``)
    ".onnx": read_onnx_initializers,  # the ONNX model zoo's Gluon nets (``gluon_names.py``)
    ".params": read_mxnet_params,  # MXNet's: Gluon's and GluonCV's (``gluon_names.py``)
    ".npz": _read_npz,
}
# The suffixes of weight files: a file of one given where a run checkpoint is needed is told so.
# ``.pth.tar``: the ImageNet example's checkpoints, kept by MoCo, SimSiam and SwAV; ``.torch``:
# VISSL's.
WEIGHT_SUFFIXES = frozenset({*_READERS, ".pth", ".pt", ".th", ".bin", ".tar", ".torch"})


def read_weight_file(path: Path) -> Any:
    """What the file at ``path`` holds: a mapping of arrays or tensors (or a checkpoint holding
    one), read by its format's reader; ``WeightsError`` for a missing or unreadable file."""
    if not path.is_file():
        raise WeightsError(
            f"{path}: weight file not found; pass the path of a .pth or .safetensors file"
        )
    try:
        reader = _READERS.get(path.suffix)
        if reader is not None:
            return reader(path)
        _refuse_torchscript(path)
        # weights_only: a weight file must never be able to run code on load. DINO's checkpoint
        # keeps its training arguments as an argparse.Namespace: data only, so it is admitted.
        with _admitting(argparse.Namespace):
            return torch.load(path, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as error:  # every reader has its own exception types
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise WeightsError(
            f"{path}: not a readable weight file ({first_line[:160]}); "
            "expected a torch.save or safetensors state_dict, BiT's .npz, Caffe's .caffemodel, "
            "Keras's .h5, Detectron's .pkl, PaddleClas's .pdparams, MXNet's .params or the ONNX "
            "zoo's .onnx"
        ) from None


def _admitting(*types: type) -> contextlib.AbstractContextManager:
    """``torch.load(weights_only=True)`` admitting ``types`` too, in this block only where the
    installed torch can (``safe_globals``, torch 2.5 and later), else from now on."""
    if hasattr(torch.serialization, "safe_globals"):
        return torch.serialization.safe_globals(list(types))
    torch.serialization.add_safe_globals(list(types))
    return contextlib.nullcontext()


def _refuse_torchscript(path: Path) -> None:
    """A TorchScript archive (OpenAI's CLIP ``RN50.pt``) holds a program, not only weights."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as archive:
        if not any(name.endswith("/constants.pkl") for name in archive.namelist()):
            return
    raise WeightsError(
        f"{path}: a TorchScript archive (a program with its weights, as OpenAI's CLIP RN50.pt "
        "is); this package reads weights only. If you trust its source, save its weights once: "
        f"torch.save(torch.jit.load('{path}', map_location='cpu').state_dict(), 'weights.pth')"
    )

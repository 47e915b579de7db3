"""The blobs of a Caffe ``.caffemodel``, read without Caffe or a protobuf library.

A ``.caffemodel`` is one protobuf ``NetParameter`` (``caffe.proto``): its ``layer`` (field 100)
are ``LayerParameter`` messages with a ``name`` (1), a ``type`` (2) and ``blobs`` (7), each a
``BlobProto`` holding its ``shape`` (7, a ``BlobShape`` of ``dim`` 1) or the older ``num``,
``channels``, ``height``, ``width`` (1-4), and its values as packed little-endian floats
(``data`` 5) or doubles (``double_data`` 8). Only those fields are read; the wire format is the
four wire types protobuf's encoding guide describes. Files of the pre-2015 ``layers`` (field 2,
``V1LayerParameter``) predate BatchNorm, so no ResNet is stored that way; they are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from resnet.errors import WeightsError
from resnet.models.protobuf_wire import VARINT, fields, floats, ints, message

__all__ = ["read_caffemodel", "BLOB_KEY"]

# How a layer's blobs are named in the flat state ``read_caffemodel`` returns.
BLOB_KEY = "{layer}.blobs.{index}"

_NET_LAYER, _NET_V1_LAYERS = 100, 2
_LAYER_NAME, _LAYER_TYPE, _LAYER_BLOBS = 1, 2, 7
_BLOB_LEGACY_DIMS, _BLOB_DATA, _BLOB_SHAPE, _BLOB_DOUBLE_DATA = (1, 2, 3, 4), 5, 7, 8


def read_caffemodel(path: Path) -> dict[str, Tensor]:
    """``{"conv1.blobs.0": weight, ...}``: every blob of every layer, shaped as stored, as
    float32; a layer without blobs (ReLU, Eltwise, Pooling) adds nothing. ``WeightsError`` for a
    file that is not a Caffe model or holds no blobs."""
    buffer = memoryview(path.read_bytes())
    state: dict[str, Tensor] = {}
    try:
        for field, _, value in fields(buffer):
            if field == _NET_V1_LAYERS:
                raise WeightsError(
                    f"{path}: a Caffe model in the V1 format (before 2015, without BatchNorm); "
                    "upgrade it with Caffe's tools/upgrade_net_proto_binary, or use a ResNet file"
                )
            if field == _NET_LAYER:
                name, blobs = _layer(message(value))
                for index, blob in enumerate(blobs):
                    state[BLOB_KEY.format(layer=name, index=index)] = blob
    except (IndexError, ValueError) as error:
        raise WeightsError(
            f"{path}: not a readable Caffe model ({error}); the file may be truncated or "
            "another format"
        ) from None
    if not state:
        raise WeightsError(
            f"{path}: a .caffemodel without any layer's weights; pass the trained model "
            "(e.g. ResNet-50-model.caffemodel), not the deploy prototxt"
        )
    return state


def _layer(buffer: memoryview) -> tuple[str, list[Tensor]]:
    name, blobs = "", []
    for field, _, value in fields(buffer):
        if field == _LAYER_NAME:
            name = bytes(message(value)).decode("utf-8")
        elif field == _LAYER_BLOBS:
            blobs.append(_blob(message(value)))
    return name, blobs


def _blob(buffer: memoryview) -> Tensor:
    shape: list[int] = []
    legacy = {}
    chunks: list[np.ndarray] = []
    for field, wire_type, value in fields(buffer):
        if field == _BLOB_SHAPE:
            shape = [dim for _, _, dims in fields(message(value)) for dim in ints(dims)]
        elif field in _BLOB_LEGACY_DIMS and wire_type == VARINT:
            legacy[field] = value
        elif field in (_BLOB_DATA, _BLOB_DOUBLE_DATA):
            dtype = "<f4" if field == _BLOB_DATA else "<f8"
            chunks.append(floats(value, wire_type, dtype))
    if not shape and legacy:
        shape = [legacy.get(field, 0) for field in _BLOB_LEGACY_DIMS]
    values = np.concatenate(chunks) if chunks else np.zeros(0, dtype="<f4")
    if int(np.prod(shape)) != values.size:
        raise ValueError(f"a blob of shape {tuple(shape)} holds {values.size} values")
    return torch.from_numpy(values.astype(np.float32).reshape(shape))

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

from collections.abc import Iterator
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import Tensor

from resnet.errors import WeightsError

__all__ = ["read_caffemodel", "BLOB_KEY"]

# How a layer's blobs are named in the flat state ``read_caffemodel`` returns.
BLOB_KEY = "{layer}.blobs.{index}"

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_NET_LAYER, _NET_V1_LAYERS = 100, 2
_LAYER_NAME, _LAYER_TYPE, _LAYER_BLOBS = 1, 2, 7
_BLOB_LEGACY_DIMS, _BLOB_DATA, _BLOB_SHAPE, _BLOB_DOUBLE_DATA = (1, 2, 3, 4), 5, 7, 8
Value = Union[int, memoryview]


def read_caffemodel(path: Path) -> dict[str, Tensor]:
    """``{"conv1.blobs.0": weight, ...}``: every blob of every layer, shaped as stored, as
    float32; a layer without blobs (ReLU, Eltwise, Pooling) adds nothing. ``WeightsError`` for a
    file that is not a Caffe model or holds no blobs."""
    buffer = memoryview(path.read_bytes())
    state: dict[str, Tensor] = {}
    try:
        for field, _, value in _fields(buffer):
            if field == _NET_V1_LAYERS:
                raise WeightsError(
                    f"{path}: a Caffe model in the V1 format (before 2015, without BatchNorm); "
                    "upgrade it with Caffe's tools/upgrade_net_proto_binary, or use a ResNet file"
                )
            if field == _NET_LAYER:
                name, blobs = _layer(_message(value))
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
    for field, _, value in _fields(buffer):
        if field == _LAYER_NAME:
            name = bytes(_message(value)).decode("utf-8")
        elif field == _LAYER_BLOBS:
            blobs.append(_blob(_message(value)))
    return name, blobs


def _blob(buffer: memoryview) -> Tensor:
    shape: list[int] = []
    legacy = {}
    chunks: list[np.ndarray] = []
    for field, wire_type, value in _fields(buffer):
        if field == _BLOB_SHAPE:
            shape = [dim for _, _, dims in _fields(_message(value)) for dim in _ints(dims)]
        elif field in _BLOB_LEGACY_DIMS and wire_type == _VARINT:
            legacy[field] = value
        elif field in (_BLOB_DATA, _BLOB_DOUBLE_DATA):
            dtype = "<f4" if field == _BLOB_DATA else "<f8"
            chunks.append(np.frombuffer(_raw(value, wire_type), dtype=dtype))
    if not shape and legacy:
        shape = [legacy.get(field, 0) for field in _BLOB_LEGACY_DIMS]
    values = np.concatenate(chunks) if chunks else np.zeros(0, dtype="<f4")
    if int(np.prod(shape)) != values.size:
        raise ValueError(f"a blob of shape {tuple(shape)} holds {values.size} values")
    return torch.from_numpy(values.astype(np.float32).reshape(shape))


def _fields(buffer: memoryview) -> Iterator[tuple[int, int, Value]]:
    """(field number, wire type, value) of each field of one message: an int for varints and
    fixed-width numbers as raw bytes, a memoryview for length-delimited fields."""
    position, end = 0, len(buffer)
    while position < end:
        key, position = _varint(buffer, position)
        field, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, position = _varint(buffer, position)
        elif wire_type in (_FIXED64, _FIXED32):
            size = 8 if wire_type == _FIXED64 else 4
            value, position = buffer[position : position + size], position + size
        elif wire_type == _BYTES:
            size, position = _varint(buffer, position)
            value, position = buffer[position : position + size], position + size
        else:
            raise ValueError(f"wire type {wire_type} at byte {position}")
        if position > end:
            raise ValueError(f"field {field} runs past the end of its message")
        yield field, wire_type, value


def _varint(buffer: memoryview, position: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        byte = buffer[position]  # IndexError at the end of a truncated file
        result |= (byte & 0x7F) << shift
        position += 1
        if byte < 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError(f"a varint longer than 10 bytes at byte {position}")


def _message(value: Value) -> memoryview:
    if not isinstance(value, memoryview):
        raise ValueError("a number where a message or string was expected")
    return value


def _raw(value: Value, wire_type: int) -> memoryview:
    """A packed field's bytes, or one unpacked fixed-width value's."""
    if wire_type not in (_BYTES, _FIXED32, _FIXED64):
        raise ValueError("a varint where floating-point values were expected")
    return _message(value)


def _ints(value: Value) -> list[int]:
    """A repeated integer field's values: packed (bytes of varints) or one unpacked varint."""
    if isinstance(value, int):
        return [value]
    values, position = [], 0
    while position < len(value):
        number, position = _varint(value, position)
        values.append(number)
    return values

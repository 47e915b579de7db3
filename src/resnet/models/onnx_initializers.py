"""The weights of an ONNX model (``resnet50-v1-7.onnx`` of the ONNX model zoo), read without the
onnx package.

An ``.onnx`` file is one protobuf ``ModelProto`` (``onnx.proto``): its ``graph`` (field 7) is a
``GraphProto`` whose ``initializer`` (5) are ``TensorProto`` messages with ``dims`` (1),
``data_type`` (2), a ``name`` (8) and the values as ``raw_data`` (9, little-endian) or typed
fields (``float_data`` 4, ``double_data`` 10). Floating-point initializers are the weights; integer
ones are the graph's constants (a Reshape's shape) and are skipped. A quantized model (int8
weights) and one whose weights live in external files are refused by name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from resnet.errors import WeightsError
from resnet.models.protobuf_wire import fields, floats, ints, message

__all__ = ["read_onnx_initializers"]

_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_DIMS, _DATA_TYPE, _FLOAT_DATA, _NAME, _RAW_DATA, _DOUBLE_DATA, _LOCATION = 1, 2, 4, 8, 9, 10, 14
_INT32_DATA = 5  # where float16 values go when not raw
# TensorProto.DataType: the floating-point ones as numpy reads their raw bytes.
_FLOATING = {1: "<f4", 10: "<f2", 11: "<f8", 16: "bfloat16"}
_QUANTIZED = {2: "uint8", 3: "int8", 17: "float8e4m3fn", 19: "float8e5m2", 21: "uint4", 22: "int4"}


def read_onnx_initializers(path: Path) -> dict[str, Tensor]:
    """``{initializer name: float32 tensor}`` of every floating-point initializer of the graph.

    ``WeightsError`` for a file that is not ONNX, a quantized model, external data, or a graph
    without floating-point initializers (weights held in Constant nodes)."""
    buffer = memoryview(path.read_bytes())
    state: dict[str, Tensor] = {}
    try:
        for field, _, value in fields(buffer):
            if field != _MODEL_GRAPH:
                continue
            for graph_field, _, tensor in fields(message(value)):
                if graph_field == _GRAPH_INITIALIZER:
                    name, array = _tensor(message(tensor), path)
                    if array is not None:
                        state[name] = torch.from_numpy(array)
    except (IndexError, ValueError, UnicodeDecodeError) as error:
        raise WeightsError(
            f"{path}: not a readable ONNX model ({error}); the file may be truncated or another "
            "format"
        ) from None
    if not state:
        raise WeightsError(
            f"{path}: an ONNX model without floating-point initializers (its weights, if any, "
            "are Constant nodes); pass a model whose weights are initializers, such as the ONNX "
            "model zoo's resnet50-v1-7.onnx"
        )
    return state


def _tensor(buffer: memoryview, path: Path) -> tuple[str, np.ndarray | None]:
    """(name, float32 array), or (name, None) for an integer constant."""
    name, data_type, dims, raw, chunks, external = "", 0, [], None, [], False
    for field, wire_type, value in fields(buffer):
        if field == _NAME:
            name = bytes(message(value)).decode("utf-8")
        elif field == _DATA_TYPE:
            data_type = int(value) if isinstance(value, int) else data_type
        elif field == _DIMS:
            dims.extend(ints(value))
        elif field == _RAW_DATA:
            raw = message(value)
        elif field in (_FLOAT_DATA, _DOUBLE_DATA):
            chunks.append(floats(value, wire_type, "<f4" if field == _FLOAT_DATA else "<f8"))
        elif field == _INT32_DATA:
            chunks.append(np.array(ints(value), dtype=np.uint16).view("<f2"))
        elif field == _LOCATION and value == 1:
            external = True
    if data_type in _QUANTIZED:
        raise WeightsError(
            f"{path}: a quantized ONNX model ({name} is {_QUANTIZED[data_type]}); its weights "
            "are not the float network's: pass the float model (resnet50-v1-12.onnx, not "
            "resnet50-v1-12-int8.onnx)"
        )
    if data_type not in _FLOATING:
        return name, None
    if external:
        raise WeightsError(
            f"{path}: keeps {name} in an external data file; save it whole once: "
            "onnx.save(onnx.load(FILE), 'whole.onnx') (ResNets fit in one file)"
        )
    if raw is not None:
        values = _decode(raw, _FLOATING[data_type])
    else:
        values = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if int(np.prod(dims)) != values.size:
        raise ValueError(f"initializer {name} of shape {tuple(dims)} holds {values.size} values")
    return name, values.astype(np.float32).reshape(dims)


def _decode(raw: memoryview, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":  # the upper half of a float32
        halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
        return (halves << 16).view(np.float32)
    return np.frombuffer(raw, dtype=dtype)

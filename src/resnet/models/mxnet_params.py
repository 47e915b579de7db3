"""The arrays of an MXNet ``.params`` file (Gluon's model zoo, GluonCV, a Module checkpoint),
read without MXNet.

``mx.nd.save`` writes a list file: the magic ``0x112`` and a reserved word (uint64 each), the
arrays (a uint64 count, then each array), and their names (a uint64 count, then each as a uint64
length and its UTF-8 bytes). An array is written in one of three versions:

- V2 and V3 (magic ``0xF993FAC9``, ``0xF993FACA``): an int32 storage type (0: dense; sparse
  arrays are refused), the shape (a uint32 rank, then int64 sides), and, unless the rank is 0,
  the context (two int32s), an int32 type flag (0 float32, 1 float64, 2 float16, ...) and the
  values, little-endian;
- V1 (``0xF993FAC8``): the same without the storage type;
- before V1 (no magic): a uint32 rank, uint32 sides, then as V1.

A Module checkpoint (``prefix-0000.params``) names its arrays ``arg:...`` and ``aux:...``; the
prefixes are dropped. Integer arrays are not weights and are left out.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from resnet.errors import WeightsError

__all__ = ["read_mxnet_params"]

_LIST_MAGIC = 0x112
_V1, _V2, _V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
_FLOATS = {0: "<f4", 1: "<f8", 2: "<f2"}
_ITEM_SIZE = {0: 4, 1: 8, 2: 2, 3: 1, 4: 4, 5: 1, 6: 8, 7: 1}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.position = memoryview(data), 0

    def take(self, size: int) -> memoryview:
        if self.position + size > len(self.data):
            raise ValueError(f"{size} bytes wanted at byte {self.position}, past the end")
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk

    def number(self, fmt: str) -> int:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]


def read_mxnet_params(path: Path) -> dict[str, Tensor]:
    """``{name: float32 tensor}`` of every floating-point array of an MXNet ``.params`` file."""
    reader = _Reader(path.read_bytes())
    try:
        if reader.number("<Q") != _LIST_MAGIC:
            raise WeightsError(
                f"{path}: not an MXNet .params file (no 0x112 magic); a .params file of another "
                "framework is not read here"
            )
        reader.number("<Q")  # reserved
        arrays = [_array(reader, path) for _ in range(reader.number("<Q"))]
        names = [bytes(reader.take(reader.number("<Q"))).decode("utf-8")
                 for _ in range(reader.number("<Q"))]  # fmt: skip
    except (ValueError, struct.error, UnicodeDecodeError) as error:
        raise WeightsError(
            f"{path}: not a readable MXNet .params file ({error}); it may be truncated"
        ) from None
    if len(names) != len(arrays):
        raise WeightsError(f"{path}: {len(arrays)} arrays but {len(names)} names; re-save it")
    return {
        name.split(":", 1)[1] if name.startswith(("arg:", "aux:")) else name: array
        for name, array in zip(names, arrays)
        if array is not None
    }


def _array(reader: _Reader, path: Path) -> Tensor | None:
    magic = reader.number("<I")
    if magic in (_V2, _V3) and reader.number("<i") != 0:  # the storage type: 0 is dense
        raise WeightsError(f"{path}: holds a sparse array; save the weights dense")
    if magic in (_V1, _V2, _V3):
        shape = [reader.number("<q") for _ in range(reader.number("<i"))]
    elif magic <= 32:  # before V1: the word read was the rank, and sides are uint32
        shape = [reader.number("<I") for _ in range(magic)]
    else:
        raise ValueError(f"an array header 0x{magic:08x} of no MXNet version")
    if not shape or any(side < 0 for side in shape):  # an empty (none) array: nothing follows
        return None
    reader.take(8)  # context: device type and id
    flag = reader.number("<i")
    if flag not in _ITEM_SIZE:
        raise ValueError(f"unknown type flag {flag}")
    values = reader.take(_ITEM_SIZE[flag] * int(np.prod(shape)))
    if flag not in _FLOATS:
        return None
    array = np.frombuffer(values, dtype=_FLOATS[flag]).astype(np.float32).reshape(shape)
    return torch.from_numpy(array)

"""Protobuf's wire format, read without a protobuf library: the four wire types of its encoding
guide (varint, 64-bit, length-delimited, 32-bit), enough to pull tensors out of a Caffe
``.caffemodel`` (``caffe_proto.py``) or an ONNX model (``onnx_initializers.py``). A truncated or
foreign file raises ``IndexError`` or ``ValueError``, which each reader turns into its message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Union

import numpy as np

__all__ = ["VARINT", "FIXED64", "BYTES", "FIXED32", "Value", "fields", "message", "floats", "ints"]

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5
Value = Union[int, memoryview]


def fields(buffer: memoryview) -> Iterator[tuple[int, int, Value]]:
    """(field number, wire type, value) of each field of one message: an int for varints and
    fixed-width numbers as raw bytes, a memoryview for length-delimited fields."""
    position, end = 0, len(buffer)
    while position < end:
        key, position = varint(buffer, position)
        field, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, position = varint(buffer, position)
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            value, position = buffer[position : position + size], position + size
        elif wire_type == BYTES:
            size, position = varint(buffer, position)
            value, position = buffer[position : position + size], position + size
        else:
            raise ValueError(f"wire type {wire_type} at byte {position}")
        if position > end:
            raise ValueError(f"field {field} runs past the end of its message")
        yield field, wire_type, value


def varint(buffer: memoryview, position: int) -> tuple[int, int]:
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


def message(value: Value) -> memoryview:
    if not isinstance(value, memoryview):
        raise ValueError("a number where a message or string was expected")
    return value


def floats(value: Value, wire_type: int, dtype: str) -> np.ndarray:
    """A repeated float (``"<f4"``) or double (``"<f8"``) field's values: packed, or one."""
    if wire_type not in (BYTES, FIXED32, FIXED64):
        raise ValueError("a varint where floating-point values were expected")
    return np.frombuffer(message(value), dtype=dtype)


def ints(value: Value) -> list[int]:
    """A repeated integer field's values: packed (bytes of varints) or one unpacked varint."""
    if isinstance(value, int):
        return [value]
    values, position = [], 0
    while position < len(value):
        number, position = varint(value, position)
        values.append(number)
    return values

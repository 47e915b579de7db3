"""MATLAB's level-5 MAT-file, read without scipy: for ImageNet's devkit ``meta.mat``.

A file is a 128-byte header (text, version, and "MI" written in its byte order), then data
elements. An element is an 8-byte tag (its type and size; a "small" tag packs up to 4 bytes of
data into itself), its data, and padding to 8 bytes. ``miCOMPRESSED`` holds one element
zlib-compressed (MATLAB 7's default ``save``); ``miMATRIX`` is an array: its flags (the class),
dimensions and name, then by class the numbers, the characters, a cell's arrays or a struct's
field names and each element's fields, all column-major.

Read: numeric, char, cell and struct arrays, compressed or not, in either byte order. Refused
with ``DataError``: sparse arrays, objects, complex numbers and MAT v7.3 (HDF5) files.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np

from resnet.errors import DataError

__all__ = ["read_mat"]

_MI_MATRIX, _MI_COMPRESSED, _MI_UTF8 = 14, 15, 16
# Data types by number (miINT8 .. miUINT64, miUTF8/16/32), as numpy's type codes.
_DATA_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8",
               12: "i8", 13: "u8", 16: "u1", 17: "u2", 18: "u4"}  # fmt: skip
_CELL, _STRUCT, _CHAR = 1, 2, 4
# Numeric classes (mxDOUBLE_CLASS .. mxUINT64_CLASS): their data may be stored in a narrower type.
_NUMERIC = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4",
            14: "i8", 15: "u8"}  # fmt: skip
_CLASS_NAMES = {3: "object", 5: "sparse", 16: "function handle", 17: "opaque"}


def read_mat(data: bytes, label: str) -> dict[str, Any]:
    """The variables of a MAT-file's bytes: ``{name: value}``. A numeric array is a numpy array
    of its dimensions, a char array a ``str`` (a list of them for several rows), a cell array
    a numpy object array, a struct array a list of ``{field: value}`` in column-major order."""
    if data[:19] == b"MATLAB 7.3 MAT-file" or data[512:520] == b"\x89HDF\r\n\x1a\n":
        raise DataError(f"{label}: a MAT v7.3 file (HDF5); save it with -v7 to read it here")
    order = {b"IM": "<", b"MI": ">"}.get(data[126:128])
    if len(data) < 128 or not data[:6] == b"MATLAB" or order is None:
        raise DataError(f"{label}: not a MATLAB MAT-file (level 5): no MATLAB header")
    variables = {}
    try:
        for element_type, payload in _Elements(data, order, label, start=128):
            if element_type == _MI_COMPRESSED:
                inflated = _Elements(_inflate(payload, label), order, label)
                element_type, payload = inflated.next_data("compressed array")
            if element_type == _MI_MATRIX:
                name, value = _Matrix(payload, order, label).read()
                variables[name] = value
    except (struct.error, ValueError, KeyError, IndexError, OverflowError, RecursionError) as error:
        # Sizes, dimensions or names that contradict the bytes: a damaged or foreign file.
        raise DataError(
            f"{label}: a malformed MAT-file ({type(error).__name__}: {error})"
        ) from None
    return variables


MAX_INFLATED = 256 * 2**20  # bytes one compressed element may expand to (meta.mat: ~2 MB)


def _inflate(payload: bytes, label: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(payload, MAX_INFLATED)
    except zlib.error as error:
        raise DataError(f"{label}: a compressed element does not inflate ({error})") from None
    if inflater.unconsumed_tail:
        raise DataError(f"{label}: a compressed element expands past {MAX_INFLATED >> 20} MiB")
    return inflated


class _Elements:
    """The data elements of ``data`` from ``start``: (type, payload) pairs."""

    def __init__(self, data: bytes, order: str, label: str, start: int = 0) -> None:
        self.data, self.order, self.label, self.pos = data, order, label, start

    def __iter__(self) -> _Elements:
        return self

    def __next__(self) -> tuple[int, bytes]:
        if self.pos + 8 > len(self.data):
            raise StopIteration
        first, second = struct.unpack_from(self.order + "II", self.data, self.pos)
        if first >> 16:  # small element: the size in the upper half, the data in the tag
            element_type, size = first & 0xFFFF, first >> 16
            payload, self.pos = self.data[self.pos + 4 : self.pos + 4 + size], self.pos + 8
        else:
            element_type, size = first, second
            end = self.pos + 8 + size
            if end > len(self.data):
                raise DataError(f"{self.label}: truncated: an element runs past the end")
            payload = self.data[self.pos + 8 : end]
            self.pos = end if element_type == _MI_COMPRESSED else end + (-size % 8)
        return element_type, payload

    def next_data(self, what: str) -> tuple[int, bytes]:
        try:
            return next(self)
        except StopIteration:
            raise DataError(f"{self.label}: truncated: an array ends before its {what}") from None


class _Matrix:
    """One miMATRIX element's array."""

    def __init__(self, payload: bytes, order: str, label: str) -> None:
        self.elements = _Elements(payload, order, label)
        self.order, self.label, self.empty = order, label, not payload

    def read(self) -> tuple[str, Any]:
        if self.empty:  # an empty cell or field is an element of size 0
            return "", np.zeros((0, 0))
        flags = self._array("flags", "u4")
        array_class, is_complex = int(flags[0]) & 0xFF, bool(int(flags[0]) & 0x800)
        dims = tuple(int(d) for d in self._array("dimensions", "i4"))
        name = self.elements.next_data("name")[1].decode("latin-1")
        count = int(np.prod(dims))
        if array_class in _NUMERIC and not is_complex:
            return name, self._array("data", _NUMERIC[array_class]).reshape(dims, order="F")
        if array_class == _CHAR:
            return name, self._chars(dims)
        if array_class == _CELL:
            cells = [self._nested() for _ in range(count)]
            return name, np.array(cells + [None], dtype=object)[:-1].reshape(dims, order="F")
        if array_class == _STRUCT:
            length = int(self._array("field name length", "i4")[0])
            raw = self.elements.next_data("field names")[1]
            fields = [raw[i : i + length].split(b"\0")[0].decode("ascii") for i in
                      range(0, len(raw), length)]  # fmt: skip
            return name, [{field: self._nested() for field in fields} for _ in range(count)]
        kind = "complex" if is_complex else _CLASS_NAMES.get(array_class, f"class {array_class}")
        raise DataError(f"{self.label}: {name or 'an array'} is a {kind} array, not read here")

    def _array(self, what: str, dtype: str) -> np.ndarray:
        element_type, payload = self.elements.next_data(what)
        if element_type not in _DATA_TYPES:
            raise DataError(f"{self.label}: its {what} has data type {element_type}, unknown")
        stored = np.frombuffer(payload, self.order + _DATA_TYPES[element_type])
        return stored.astype(dtype)

    def _chars(self, dims: tuple[int, ...]) -> Any:
        element_type, payload = self.elements.next_data("characters")
        if element_type == _MI_UTF8:  # one code point per character of the array
            codes = np.array([ord(char) for char in payload.decode("utf-8")], dtype=np.uint32)
        elif element_type in _DATA_TYPES:
            codes = np.frombuffer(payload, self.order + _DATA_TYPES[element_type])
        else:
            raise DataError(f"{self.label}: characters of data type {element_type}, unknown")
        if not codes.size:
            return ""
        rows = codes.reshape(dims, order="F").reshape(dims[0], -1)
        text = ["".join(map(chr, row)) for row in rows]
        return text[0] if len(text) == 1 else text

    def _nested(self) -> Any:
        element_type, payload = self.elements.next_data("contents")
        if element_type != _MI_MATRIX:
            raise DataError(f"{self.label}: a cell or field holds data type {element_type}")
        return _Matrix(payload, self.order, self.label).read()[1]

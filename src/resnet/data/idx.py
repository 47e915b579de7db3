"""IDX files (MNIST, Fashion-MNIST): strict parsing, so a damaged file is an error, never an array.

Format (http://yann.lecun.com/exdb/mnist/): magic ``00 00 <dtype> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the data in C order. Files may be gzip-compressed.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from resnet.errors import DataError
from resnet.io import atomic_write

__all__ = [
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "IDX_FILES",
    "read_idx",
    "write_idx",
    "find_idx_files",
    "load_idx_split",
]

IDX_IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dims (N, H, W)
IDX_LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dim (N,)

# The four files of MNIST and Fashion-MNIST, by split; each may also be present as ``<name>.gz``.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype: code for code, dtype in _DTYPES.items()}


def read_idx(path: str | os.PathLike, *, expect_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a read-only numpy array.

    Raises ``DataError`` naming the file if it is not gzip-valid, has a wrong magic number, or
    holds a different number of bytes than its header announces.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path}: {exc.strerror}; check the path") from exc
    return _read_idx_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size, expect_magic)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, _mtime_ns: int, _size: int, expect_magic: int | None) -> np.ndarray:
    # Keyed on (path, mtime, size): repeated loads (train then test, many tests) parse once,
    # and a rewritten file is parsed again. The array is read-only, so sharing it is safe.
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"{path}: corrupt or truncated gzip data ({exc}); download the file again"
            ) from exc
    return _parse_idx(data, path, expect_magic)


def _parse_idx(data: bytes, path: str, expect_magic: int | None) -> np.ndarray:
    redownload = "download the file again"
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes); {redownload}")
    (magic,) = struct.unpack(">I", data[:4])
    code, ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or code not in _DTYPES or ndim == 0:
        raise DataError(f"{path}: not an IDX file (magic 0x{magic:08x}); {redownload}")
    if expect_magic is not None and magic != expect_magic:
        raise DataError(
            f"{path}: wrong IDX magic 0x{magic:08x}, expected 0x{expect_magic:08x}; "
            f"check that images and labels files are not swapped, or {redownload}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header; {redownload}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _DTYPES[code]
    count = int(np.prod(dims, dtype=np.int64))
    expected, present = count * dtype.itemsize, len(data) - header
    if present != expected:
        problem = "truncated" if present < expected else "has trailing bytes"
        raise DataError(
            f"{path}: IDX file {problem}: header says shape {dims} ({expected} bytes) but "
            f"{present} bytes are present; {redownload}"
        )
    return np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz`` (atomic)."""
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in _CODES or array.ndim == 0:
        raise DataError(f"cannot write {array.dtype} array of {array.ndim} dims as IDX")
    header = bytes([0, 0, _CODES[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=dtype).tobytes()
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6)
    with atomic_write(path, "wb") as handle:
        handle.write(payload)


def find_idx_files(directory: Path) -> dict[str, tuple[Path, Path]] | None:
    """The (images, labels) paths of both splits in ``directory``, or None if any is missing.

    Accepts raw or ``.gz`` files, directly in ``directory`` or in torchvision's
    ``<Dataset>/raw`` sub-folder layout.
    """
    for folder in (directory, *sorted(directory.glob("*/raw"))):
        found: dict[str, tuple[Path, Path]] = {}
        for split, names in IDX_FILES.items():
            paths = [_first_existing(folder, name) for name in names]
            if None in paths:
                break
            found[split] = (paths[0], paths[1])
        else:
            return found
    return None


def _first_existing(folder: Path, name: str) -> Path | None:
    # Prefer the raw file (torchvision extracts it next to the .gz): no decompression needed.
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_idx_split(
    images_path: Path, labels_path: Path, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Read one split: uint8 images (N, 1, H, W) and int64 labels (N,), cross-checked."""
    images = read_idx(images_path, expect_magic=IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, expect_magic=IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels; the files belong to different splits or are damaged"
        )
    if labels.size and int(labels.max()) >= num_classes:
        raise DataError(
            f"{labels_path}: label {int(labels.max())} is out of range for {num_classes} "
            "classes; the file is damaged or from another dataset"
        )
    return images[:, None], labels.astype(np.int64)

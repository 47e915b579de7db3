"""IDX files (MNIST, Fashion-MNIST): strict parsing, so a damaged file is an error, never an array.

Format (http://yann.lecun.com/exdb/mnist/): magic ``00 00 <dtype> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the data in C order. Files may be gzip-compressed.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from resnet.errors import DataError
from resnet.io import atomic_write

__all__ = [
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "IDX_FILES",
    "MAX_IDX_BYTES",
    "read_idx",
    "write_idx",
    "find_idx_files",
    "missing_idx_files",
    "check_idx_dataset",
    "load_idx_split",
]

IDX_IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dims (N, H, W)
IDX_LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dim (N,)

# The four files of MNIST and Fashion-MNIST, by split; each may also be present as ``<name>.gz``.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Largest array an IDX file may hold: 50x MNIST's train images, far below any real RAM limit.
MAX_IDX_BYTES = 1 << 31
_GZIP_MAX_RATIO = 1100  # deflate's best case is ~1032:1, so a gzip file never expands more

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
def _read_idx_cached(path: str, _mtime_ns: int, size: int, expect_magic: int | None) -> np.ndarray:
    # Keyed on (path, mtime, size): repeated loads (train then test, many tests) parse once,
    # and a rewritten file is parsed again. The array is read-only, so sharing it is safe.
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        handle = gzip.GzipFile(fileobj=raw) if compressed else raw
        try:
            return _parse_idx(handle, path, size, compressed, expect_magic)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"{path}: corrupt or truncated gzip data ({exc}); download the file again"
            ) from exc


def _parse_idx(
    handle: BinaryIO, path: str, file_size: int, compressed: bool, expect_magic: int | None
) -> np.ndarray:
    """Read the header, check the size it claims against what the file can hold, then read
    exactly that many bytes: a lying header never causes a large allocation."""
    redownload = "download the file again"
    magic_bytes = handle.read(4)
    if len(magic_bytes) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(magic_bytes)} bytes); {redownload}")
    (magic,) = struct.unpack(">I", magic_bytes)
    code, ndim = magic_bytes[2], magic_bytes[3]
    if magic_bytes[:2] != b"\x00\x00" or code not in _DTYPES or ndim == 0:
        raise DataError(f"{path}: not an IDX file (magic 0x{magic:08x}); {redownload}")
    if expect_magic is not None and magic != expect_magic:
        raise DataError(
            f"{path}: wrong IDX magic 0x{magic:08x}, expected 0x{expect_magic:08x}; "
            f"check that images and labels files are not swapped, or {redownload}"
        )
    dims_bytes = handle.read(4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header; {redownload}")
    dims = struct.unpack(f">{ndim}I", dims_bytes)
    header = 4 + 4 * ndim
    dtype = _DTYPES[code]
    count = math.prod(dims)  # Python ints: no overflow for any header
    expected = count * dtype.itemsize
    if expected > MAX_IDX_BYTES:
        raise DataError(
            f"{path}: IDX header claims shape {dims} ({expected} bytes), over the "
            f"{MAX_IDX_BYTES}-byte limit for IDX files; the header is damaged, {redownload}"
        )
    if compressed and expected > file_size * _GZIP_MAX_RATIO:
        raise DataError(
            f"{path}: IDX header claims shape {dims} ({expected} bytes), more than a "
            f"{file_size}-byte gzip file can expand to; the header is damaged, {redownload}"
        )
    if compressed:
        data = handle.read(expected)
        present = len(data) + len(handle.read(1))  # one byte more is enough to see trailing data
    else:  # a raw file's size is known: compare it before reading anything
        present = file_size - header
        data = handle.read(expected) if present == expected else b""
    if present < expected:
        raise DataError(
            f"{path}: IDX file truncated: header says shape {dims} ({expected} bytes) but "
            f"{present} bytes are present; {redownload}"
        )
    if present > expected:
        raise DataError(
            f"{path}: IDX file has trailing bytes after the {expected} bytes that its header "
            f"(shape {dims}) announces; {redownload}"
        )
    return np.frombuffer(data, dtype=dtype, count=count).reshape(dims)


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


def missing_idx_files(directory: Path) -> tuple[Path, list[str]] | None:
    """(folder, missing file names) where ``directory`` holds some of the four files, else None."""
    names = [name for pair in IDX_FILES.values() for name in pair]
    for folder in (directory, *sorted(directory.glob("*/raw"))):
        missing = [f"{name}.gz" for name in names if _first_existing(folder, name) is None]
        if 0 < len(missing) < len(names):
            return folder, missing
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
    if 0 in images.shape[1:]:
        raise DataError(
            f"{images_path}: images have shape {images.shape}, with an empty image side; the "
            "file is damaged or not an image file, download it again"
        )
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


# MNIST, Fashion-MNIST (and KMNIST) ship files of the same names and shapes, so a folder of the
# wrong one loads without a complaint and trains digits under the names of clothes. The label
# files tell them apart: SHA-256 of Fashion-MNIST's label bytes (after the 8-byte header).
FASHION_MNIST_LABELS_SHA256 = {
    60000: "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
    10000: "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
}


def check_idx_dataset(name: str, labels: np.ndarray, where: Path) -> None:
    """``DataError`` when a split of the official size (60,000 / 10,000) is not the dataset
    ``name`` says: ``fashion-mnist`` whose labels are not Fashion-MNIST's, or ``mnist`` whose
    labels are. Splits of other sizes (files made for tests, subsets) are not judged."""
    expected = FASHION_MNIST_LABELS_SHA256.get(len(labels))
    if expected is None or name not in ("fashion-mnist", "mnist"):
        return
    digest = hashlib.sha256(np.ascontiguousarray(labels, dtype=np.uint8).tobytes()).hexdigest()
    if name == "fashion-mnist" and digest != expected:
        raise DataError(
            f"{where} holds {len(labels)} labels that are not Fashion-MNIST's (MNIST and KMNIST "
            "ship files of the same names); point --data-dir at Fashion-MNIST's files, or "
            "name the dataset they are"
        )
    if name == "mnist" and digest == expected:
        raise DataError(
            f"{where} holds Fashion-MNIST's files, not MNIST's (they have the same names); "
            "use --dataset fashion-mnist, or point --data-dir at MNIST's files"
        )

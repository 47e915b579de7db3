"""CIFAR-10 and CIFAR-100 from either official format (https://www.cs.toronto.edu/~kriz/cifar.html).

The python version is a set of pickles. Unpickling can run arbitrary code, so they are read by an
unpickler that can only rebuild numpy arrays; any other global (``os.system``, ``exec``, ...)
is refused before it is ever called. The binary version is fixed-size records.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet.errors import DataError

__all__ = [
    "CIFAR_VARIANTS",
    "CifarFiles",
    "find_cifar_files",
    "missing_cifar_files",
    "load_cifar",
    "safe_unpickle",
]

_IMAGE_BYTES = 3 * 32 * 32  # one image: three 32x32 channel planes, row-major
# The largest official file is CIFAR-100's train set (50000 records of 3074 bytes, ~154 MB);
# anything 4x bigger is not a CIFAR batch and is refused before it is read.
_MAX_BATCH_BYTES = 4 * 50_000 * 3074
_MAX_NAMES_BYTES = 1 << 20  # class-name lists are a few hundred bytes


@dataclass(frozen=True)
class _Variant:
    num_classes: int
    python_dir: str
    python_train: tuple[str, ...]
    python_test: str
    python_meta: str
    python_label_key: str  # the fine labels for CIFAR-100
    python_names_key: str
    binary_dir: str
    binary_train: tuple[str, ...]
    binary_test: str
    binary_meta: str
    label_bytes: int  # CIFAR-100 records hold a coarse then a fine label byte


CIFAR_VARIANTS = {
    "cifar10": _Variant(
        num_classes=10,
        python_dir="cifar-10-batches-py",
        python_train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        python_test="test_batch",
        python_meta="batches.meta",
        python_label_key="labels",
        python_names_key="label_names",
        binary_dir="cifar-10-batches-bin",
        binary_train=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        binary_test="test_batch.bin",
        binary_meta="batches.meta.txt",
        label_bytes=1,
    ),
    "cifar100": _Variant(
        num_classes=100,
        python_dir="cifar-100-python",
        python_train=("train",),
        python_test="test",
        python_meta="meta",
        python_label_key="fine_labels",
        python_names_key="fine_label_names",
        binary_dir="cifar-100-binary",
        binary_train=("train.bin",),
        binary_test="test.bin",
        binary_meta="fine_label_names.txt",
        label_bytes=2,
    ),
}


@dataclass(frozen=True)
class CifarFiles:
    """The files of one CIFAR copy on disk."""

    variant: str  # "cifar10" | "cifar100"
    format: str  # "python" | "binary"
    train: tuple[Path, ...]
    test: Path
    meta: Path | None  # class names; optional


def find_cifar_files(directory: Path, variant: str) -> CifarFiles | None:
    """The CIFAR files in ``directory`` or in its official sub-folder, python format first."""
    spec = CIFAR_VARIANTS[variant]
    layouts = (
        ("python", spec.python_dir, spec.python_train, spec.python_test, spec.python_meta),
        ("binary", spec.binary_dir, spec.binary_train, spec.binary_test, spec.binary_meta),
    )
    for fmt, subdir, train_names, test_name, meta_name in layouts:
        for folder in (directory / subdir, directory):
            train = tuple(folder / name for name in train_names)
            test = folder / test_name
            if all(p.is_file() for p in train) and test.is_file():
                meta = folder / meta_name
                return CifarFiles(variant, fmt, train, test, meta if meta.is_file() else None)
    return None


def missing_cifar_files(directory: Path, variant: str) -> tuple[Path, list[str]] | None:
    """(folder, missing file names) where ``directory`` holds part of a CIFAR copy, else None."""
    spec = CIFAR_VARIANTS[variant]
    layouts = (
        (spec.python_dir, (*spec.python_train, spec.python_test)),
        (spec.binary_dir, (*spec.binary_train, spec.binary_test)),
    )
    for subdir, names in layouts:
        for folder in (directory / subdir, directory):
            present = [name for name in names if (folder / name).is_file()]
            if present and len(present) < len(names):
                return folder, [name for name in names if name not in present]
    return None


def load_cifar(
    files: CifarFiles,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str] | None]:
    """``({"train": (images, labels), "test": ...}, class_names or None)``.

    Images are uint8 (N, 3, 32, 32), labels int64 (N,). Cached per (files, modification times).
    """
    stamps = tuple(_stamp(p) for p in (*files.train, files.test))
    return _load_cifar_cached(files, stamps)


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=4)
def _load_cifar_cached(files: CifarFiles, _stamps: tuple) -> tuple[dict, list[str] | None]:
    spec = CIFAR_VARIANTS[files.variant]
    read = _read_python_batch if files.format == "python" else _read_binary_batch
    train_parts = [read(p, spec) for p in files.train]
    splits = {
        "train": (
            np.concatenate([images for images, _ in train_parts]),
            np.concatenate([labels for _, labels in train_parts]),
        ),
        "test": read(files.test, spec),
    }
    for images, labels in splits.values():
        images.setflags(write=False)
        labels.setflags(write=False)
    names = None
    if files.meta is not None:
        read_names = _read_python_names if files.format == "python" else _read_text_names
        names = read_names(files.meta, spec)
    return splits, names


# --- python (pickle) format ---------------------------------------------------------------


def _allowed_globals() -> dict[tuple[str, str], Any]:
    # Exactly what numpy needs to rebuild an ndarray: _reconstruct/ndarray/dtype for protocols
    # up to 4 (the official files), _frombuffer for protocol 5. numpy 2 renamed numpy.core to
    # numpy._core; both spellings map to the real function without importing the named module.
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler whose only reachable callables are numpy's array constructors."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}")
        return allowed[(module, name)]


def safe_unpickle(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` allowing only numpy arrays and plain Python containers/values.

    Bytes keys of Python 2 pickles (the official CIFAR files) stay ``bytes``. Any refused global
    or malformed pickle raises ``DataError`` naming the file; the refused callable never runs.
    """
    path = Path(path)
    try:
        _checked_size(path)
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}; check the path") from exc
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(
            f"{path}: unsafe or corrupt pickle ({exc}); only numpy arrays are allowed, so "
            "replace the file with the official CIFAR download"
        ) from exc
    except Exception as exc:  # truncated or garbage pickles raise many kinds of errors
        raise DataError(
            f"{path}: corrupt pickle ({type(exc).__name__}: {exc}); download the file again"
        ) from exc


def _str_keys(obj: Any, path: Path) -> dict[str, Any]:
    if not isinstance(obj, dict) or not all(isinstance(k, (bytes, str)) for k in obj):
        raise DataError(
            f"{path}: expected a dict with str/bytes keys, got {type(obj).__name__}; "
            "this is not a CIFAR python batch"
        )
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_python_batch(path: Path, spec: _Variant) -> tuple[np.ndarray, np.ndarray]:
    batch = _str_keys(safe_unpickle(path), path)
    data, labels = batch.get("data"), batch.get(spec.python_label_key)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != _IMAGE_BYTES
    ):
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(
            f"{path}: 'data' must be a uint8 array of shape (N, {_IMAGE_BYTES}), got {desc}; "
            "download the file again"
        )
    if not isinstance(labels, list) or not all(type(v) is int for v in labels):
        raise DataError(
            f"{path}: {spec.python_label_key!r} must be a list of ints; download the file again"
        )
    if len(labels) != data.shape[0]:
        raise DataError(
            f"{path}: {data.shape[0]} images but {len(labels)} labels; download the file again"
        )
    label_array = _check_labels(np.array(labels, dtype=np.int64), spec.num_classes, path)
    return data.reshape(-1, 3, 32, 32), label_array


def _read_python_names(path: Path, spec: _Variant) -> list[str]:
    names = _str_keys(safe_unpickle(path), path).get(spec.python_names_key)
    if (
        not isinstance(names, list)
        or len(names) != spec.num_classes
        or not all(isinstance(n, (bytes, str)) for n in names)
    ):
        raise DataError(
            f"{path}: {spec.python_names_key!r} must list {spec.num_classes} class names; "
            "download the file again or delete it to use the built-in names"
        )
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]
    except UnicodeDecodeError as exc:
        raise DataError(_not_utf8(path, exc)) from exc


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> str:
    return (
        f"{path}: class names are not valid UTF-8 ({exc.reason} at byte {exc.start}); "
        "download the file again or delete it to use the built-in names"
    )


# --- binary format ------------------------------------------------------------------------


def _read_binary_batch(path: Path, spec: _Variant) -> tuple[np.ndarray, np.ndarray]:
    record = spec.label_bytes + _IMAGE_BYTES
    size = _checked_size(path)
    if size == 0 or size % record:
        raise DataError(
            f"{path}: size {size} bytes is not a positive multiple of the {record}-byte "
            "record; the file is truncated or not a CIFAR binary batch, download it again"
        )
    data = path.read_bytes()
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    # The fine label is the last label byte (CIFAR-100: coarse, fine; CIFAR-10: one label).
    labels = _check_labels(
        records[:, spec.label_bytes - 1].astype(np.int64), spec.num_classes, path
    )
    images = np.ascontiguousarray(records[:, spec.label_bytes :]).reshape(-1, 3, 32, 32)
    return images, labels


def _read_text_names(path: Path, spec: _Variant) -> list[str]:
    try:
        with open(path, "rb") as handle:
            text = handle.read(_MAX_NAMES_BYTES).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(_not_utf8(path, exc)) from exc
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != spec.num_classes:
        raise DataError(
            f"{path}: lists {len(names)} class names, expected {spec.num_classes}; "
            "download the file again or delete it to use the built-in names"
        )
    return names


def _checked_size(path: Path) -> int:
    """Size of ``path``, refused before reading if no official CIFAR batch could be that big."""
    size = path.stat().st_size
    if size > _MAX_BATCH_BYTES:
        raise DataError(
            f"{path}: {size} bytes is more than any CIFAR batch ({_MAX_BATCH_BYTES} bytes at "
            "most); this is not a CIFAR file, download the dataset again"
        )
    return size


def _check_labels(labels: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise DataError(
            f"{path}: label {int(bad[0])} out of range for {num_classes} classes; "
            "the file is damaged or from another dataset, download it again"
        )
    return labels

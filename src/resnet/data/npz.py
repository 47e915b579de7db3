"""``.npz`` arrays in the MedMNIST layout (arXiv 2110.14795): ``{train,val,test}_{images,labels}``.

Images are uint8 (N, H, W) grayscale, (N, H, W, 3) RGB, or (N, D, H, W) volumes; labels are
(N,) or (N, 1) integers. An optional ``class_names`` string array names the classes. PyTorch's
channels-first (N, 1 or 3, H, W) is read as images too (a volume of 1 or 3 slices is none).
"""

from __future__ import annotations

import functools
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from resnet.errors import DataError

__all__ = ["MAX_CLASSES", "NPZ_SPLITS", "NPZ_EXPECTED_KEYS", "load_npz_arrays"]

NPZ_SPLITS = ("train", "val", "test")
# Classes are counted as max label + 1, and the classifier gets that many outputs: a stray
# label of 10**9 must not ask for a 10**9-way layer.
MAX_CLASSES = 100_000
NPZ_EXPECTED_KEYS = (
    "train_images, train_labels (required); val_images, val_labels, test_images, test_labels, "
    "class_names (optional)"
)
_KEYS = (*(f"{s}_{k}" for s in NPZ_SPLITS for k in ("images", "labels")), "class_names")
_ZIP_MAX_RATIO = 1100  # deflate's best case is ~1032:1


def load_npz_arrays(
    path: str | os.PathLike,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """``({split: (images, labels)}, class_names)`` for the splits present in the file.

    Images come back uint8 (N, C, H, W) or (N, 1, D, H, W), labels int64 (N,), both read-only
    (cached per path and modification time).
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}; check the path") from exc
    return _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, _mtime_ns: int, _size: int) -> tuple[dict, list[str]]:
    arrays = _read_arrays(path)
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in NPZ_SPLITS:
        images_key, labels_key = f"{split}_images", f"{split}_labels"
        if images_key not in arrays and labels_key not in arrays:
            continue
        if images_key not in arrays or labels_key not in arrays:
            raise DataError(
                f"{path}: has {images_key if images_key in arrays else labels_key} but not its "
                f"partner; expected keys {NPZ_EXPECTED_KEYS}"
            )
        images = _to_channels_first(arrays[images_key], path, images_key)
        labels = _to_label_vector(arrays[labels_key], path, labels_key)
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{path}: {images_key} holds {images.shape[0]} samples but {labels_key} holds "
                f"{labels.shape[0]}; the arrays must have the same length"
            )
        images.setflags(write=False)
        labels.setflags(write=False)
        splits[split] = (images, labels)

    if "train" not in splits:
        raise DataError(
            f"{path}: no train_images/train_labels (keys: {sorted(arrays)}); expected keys "
            f"{NPZ_EXPECTED_KEYS}"
        )
    sample_shape = splits["train"][0].shape[1:]
    for split, (images, _) in splits.items():
        if images.shape[1:] != sample_shape:
            raise DataError(
                f"{path}: {split}_images samples have shape {images.shape[1:]} (channels "
                f"first) but train_images has {sample_shape}; all splits must match"
            )
    return splits, _class_names(arrays, splits, path)


def _read_arrays(path: str) -> dict[str, np.ndarray]:
    """The archive's arrays under the keys this layout uses, each checked before it is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            keys = [key for key in _KEYS if key in members]
            for key in keys:
                _check_member(archive, members[key], path, key)
        # allow_pickle=False: an .npz may come from anywhere; object arrays could run code.
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in keys}
    except DataError:
        raise
    except Exception as exc:  # zipfile and numpy raise many types for a damaged archive
        raise DataError(
            f"{path}: not a readable .npz of plain arrays ({_first_line(exc)}); expected keys "
            f"{NPZ_EXPECTED_KEYS}"
        ) from exc


def _check_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, key: str) -> None:
    # np.load allocates the shape its header claims before reading the data: check the claim
    # against the member's size first, and that size against what deflate can expand to.
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise DataError(f"{path}: {key} uses .npy format {version}; save it with np.savez")
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(member)
    if dtype.hasobject:
        raise DataError(
            f"{path}: {key} is an object array (pickled data), which is refused; save plain "
            "numeric arrays"
        )
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > info.file_size or info.file_size > _ZIP_MAX_RATIO * info.compress_size + 4096:
        raise DataError(
            f"{path}: {key} claims shape {shape} ({claimed} bytes) but the archive holds "
            f"{info.compress_size} compressed bytes for it; the file is damaged, write it again"
        )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _to_channels_first(images: np.ndarray, path: str, key: str) -> np.ndarray:
    if images.dtype != np.uint8:
        raise DataError(
            f"{path}: {key} is {images.dtype}, expected uint8 pixels 0..255; convert with "
            "(x * 255).round().astype(np.uint8)"
        )
    if images.ndim in (3, 4) and 0 in images.shape[1:]:
        raise DataError(f"{path}: {key} has shape {images.shape}, with an empty image side")
    if images.ndim == 3:  # (N, H, W) grayscale
        return np.ascontiguousarray(images[:, None])
    if images.ndim == 4 and images.shape[-1] in (1, 3):  # (N, H, W, C)
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    if images.ndim == 4 and images.shape[1] in (1, 3):  # (N, C, H, W): it was read as volumes
        return np.ascontiguousarray(images)
    if images.ndim == 4 and 4 in (images.shape[1], images.shape[-1]):
        raise DataError(
            f"{path}: {key} has shape {images.shape}: 4 channels (RGBA?), which no layout here "
            "takes; keep the colour channels (x[..., :3] or x[:, :3]) or make it grayscale"
        )
    if images.ndim == 4:  # (N, D, H, W) volumes
        return np.ascontiguousarray(images[:, None])
    raise DataError(
        f"{path}: {key} has shape {images.shape}; expected (N, H, W), (N, H, W, 3) or (N, D, H, W)"
    )


def _to_label_vector(labels: np.ndarray, path: str, key: str) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: {key} is {labels.dtype} {labels.shape}; expected integer class labels "
            "of shape (N,) or (N, 1) (multi-label targets are not supported)"
        )
    if labels.size and labels.min() < 0:
        raise DataError(f"{path}: {key} has negative label {int(labels.min())}; use 0..K-1")
    if labels.size and labels.max() >= MAX_CLASSES:
        raise DataError(
            f"{path}: {key} has label {int(labels.max())}, above the limit of {MAX_CLASSES} "
            "classes; labels must be class indices 0..K-1"
        )
    return labels.astype(np.int64)


def _class_names(arrays: dict[str, np.ndarray], splits: dict, path: str) -> list[str]:
    num_classes = 1 + max((int(lab.max()) for _, lab in splits.values() if lab.size), default=-1)
    if "class_names" not in arrays:
        return [str(i) for i in range(num_classes)]
    names = arrays["class_names"]
    if names.ndim != 1 or names.dtype.kind not in "US" or len(names) < num_classes:
        raise DataError(
            f"{path}: class_names must be a 1-D string array with at least {num_classes} "
            f"entries (labels go up to {num_classes - 1}), got {names.dtype} {names.shape}"
        )
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: class_names are not valid UTF-8 ({exc.reason} at byte {exc.start}); "
            "store them as a str array"
        ) from exc

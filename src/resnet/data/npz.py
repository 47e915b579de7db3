"""``.npz`` arrays in the MedMNIST layout (arXiv 2110.14795): ``{train,val,test}_{images,labels}``.

Images are uint8 (N, H, W) grayscale, (N, H, W, 3) RGB, or (N, D, H, W) volumes; labels are
(N,) or (N, 1) integers. An optional ``class_names`` string array names the classes.
"""

from __future__ import annotations

import functools
import os
import zipfile
from pathlib import Path

import numpy as np

from resnet.errors import DataError

__all__ = ["NPZ_SPLITS", "NPZ_EXPECTED_KEYS", "load_npz_arrays"]

NPZ_SPLITS = ("train", "val", "test")
NPZ_EXPECTED_KEYS = (
    "train_images, train_labels (required); val_images, val_labels, test_images, test_labels, "
    "class_names (optional)"
)


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
    try:
        # allow_pickle=False: an .npz may come from anywhere; object arrays could run code.
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"{path}: not a readable .npz of plain arrays ({exc}); expected keys "
            f"{NPZ_EXPECTED_KEYS}"
        ) from exc

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


def _to_channels_first(images: np.ndarray, path: str, key: str) -> np.ndarray:
    if images.dtype != np.uint8:
        raise DataError(
            f"{path}: {key} is {images.dtype}, expected uint8 pixels 0..255; convert with "
            "(x * 255).round().astype(np.uint8)"
        )
    if images.ndim == 3:  # (N, H, W) grayscale
        return np.ascontiguousarray(images[:, None])
    if images.ndim == 4 and images.shape[-1] in (1, 3):  # (N, H, W, C)
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
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
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names.tolist()]

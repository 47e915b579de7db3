"""What every dataset carries: its metadata and, for in-memory sources, one uint8 tensor."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from resnet.checks import is_whole, whole_number
from resnet.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_VAL_FRACTION",
    "DatasetMeta",
    "ArrayDataset",
    "channel_mean_std",
    "seeded_split",
    "subset_indices",
]

# Share of the train split held out as "val" when a source has none. 0: train on the whole
# official train split and evaluate on test, as the curves of arXiv 1512.03385 do.
DEFAULT_VAL_FRACTION = 0.0


@dataclass
class DatasetMeta:
    """Everything a model, a checkpoint or ``predict`` needs to know about a dataset."""

    name: str
    class_names: list[str]
    channels: int  # 1 (grayscale) or 3 (RGB)
    image_size: tuple[int, ...]  # (H, W), or (D, H, W) for volumes
    # Per-channel statistics on the 0..1 scale, always from the official train split, so the
    # normalization of val/test (and of a checkpoint's inputs) never depends on val_fraction.
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # How much of the resized image the evaluation's centre crop keeps: 1.0 (ours: the image's
    # short side scaled to the input side), 0.875 for ImageNet classifiers (torchvision's resize
    # to 256 then crop 224). Training augments otherwise.
    crop_fraction: float = 1.0
    # Each class's id where its data names classes by ids and its classifier by words:
    # ImageNet's WordNet ids (n01440764 for "tench"), so a folder of either name scores. Empty:
    # the class names are all there is.
    class_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.class_names = [str(c) for c in self.class_names]
        self.class_ids = [str(c) for c in self.class_ids]
        if self.class_ids and (
            len(self.class_ids) != len(self.class_names)
            or len(set(self.class_ids)) != len(self.class_ids)
        ):
            raise DataError(
                f"dataset {self.name!r}: {len(self.class_ids)} class ids for "
                f"{len(self.class_names)} classes; give one unique id per class, or none"
            )
        self.image_size = tuple(int(s) for s in self.image_size)
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise DataError(
                f"dataset {self.name!r}: mean/std have {len(self.mean)}/{len(self.std)} entries "
                f"but channels={self.channels}; give one value per channel"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists)."""
        d = asdict(self)
        for key in ("image_size", "mean", "std"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetMeta:
        """Inverse of :meth:`to_dict`, every value checked (it is read back from checkpoint JSON
        and ONNX metadata that anyone can edit); unknown keys are ignored so older readers keep
        working. A missing or malformed value is one ``DataError`` naming it."""
        if not isinstance(d, dict):
            raise DataError(f"dataset metadata must be a mapping, got {type(d).__name__}")
        missing = [k for k in ("name", "class_names", "channels", "image_size", "mean", "std")
                   if k not in d]  # fmt: skip
        if missing:
            raise DataError(f"dataset metadata lacks {', '.join(missing)}; re-save the file")
        names, channels, size = d["class_names"], d["channels"], d["image_size"]
        _require(isinstance(d["name"], str), "name must be a string", d["name"])
        _require(isinstance(names, (list, tuple)) and len(names) >= 1
                 and all(isinstance(n, str) for n in names), "class_names must be a list of "
                 "strings", names)  # fmt: skip
        _require(_is_int(channels) and 1 <= channels <= 4096, "channels must be 1..4096", channels)
        _require(isinstance(size, (list, tuple)) and 1 <= len(size) <= 3
                 and all(_is_int(s) and 1 <= s <= 8192 for s in size),
                 "image_size must be 1-3 sides of 1..8192 pixels", size)  # fmt: skip
        for key in ("mean", "std"):
            values = d[key]
            ok = (
                isinstance(values, list)
                and len(values) == channels
                and all(_is_number(v) and math.isfinite(v) for v in values)
            )
            _require(ok, f"{key} must hold {channels} finite numbers (one per channel)", values)
        _require(all(v > 0 for v in d["std"]), "std must be positive", d["std"])
        crop = d.get("crop_fraction", 1.0)  # absent from checkpoints before 2026-12-04
        _require(_is_number(crop) and 0.1 <= crop <= 1, "crop_fraction must be in [0.1, 1]", crop)
        ids = d.get("class_ids", [])  # absent from checkpoints before 2026-12-04
        _require(isinstance(ids, list) and all(isinstance(n, str) for n in ids)
                 and len(ids) in (0, len(names)) and len(set(ids)) == len(ids),
                 "class_ids must be a list of unique strings, one per class", ids)  # fmt: skip
        return cls(
            name=d["name"],
            class_names=list(names),
            channels=int(channels),
            image_size=tuple(size),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            crop_fraction=float(crop),
            class_ids=list(ids),
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require(condition: bool, what: str, value: Any) -> None:
    if not condition:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise DataError(f"dataset metadata: {what}, got {shown}; re-save the file")


@dataclass
class ArrayDataset:
    """A whole dataset in memory: ``images`` uint8 (N, C, H, W) or (N, C, D, H, W), ``labels``
    int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    meta: DatasetMeta = field(repr=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() not in (4, 5):
            raise DataError(
                f"dataset {self.meta.name!r}: images must be uint8 (N, C, H, W) or "
                f"(N, C, D, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise DataError(
                f"dataset {self.meta.name!r}: labels must be int64 of shape "
                f"({self.images.shape[0]},), got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if self.images.shape[1] != self.meta.channels:
            raise DataError(
                f"dataset {self.meta.name!r}: images have {self.images.shape[1]} channels but "
                f"the metadata says {self.meta.channels}"
            )
        size = tuple(self.images.shape[2:])
        if size != tuple(self.meta.image_size):
            # A network with global pooling takes any size, so a mismatch scored silently: 32x32
            # images through a checkpoint trained (and normalised) at 28x28.
            shown = "x".join(map(str, self.meta.image_size))
            raise DataError(
                f"dataset {self.meta.name!r}: images are {'x'.join(map(str, size))} but the "
                f"metadata says {shown}; resize them to {shown} (an image folder is resized "
                "for you)"
            )
        if len(self.labels) and (
            self.labels.min() < 0 or self.labels.max() >= self.meta.num_classes
        ):
            # Caught here, not as "Target 12 is out of bounds" inside the loss mid-run.
            raise DataError(
                f"dataset {self.meta.name!r}: labels span {int(self.labels.min())}.."
                f"{int(self.labels.max())} but the metadata names {self.meta.num_classes} "
                f"classes; labels must be 0..{self.meta.num_classes - 1}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def subset(self, n_or_indices: int | Sequence[int] | torch.Tensor) -> ArrayDataset:
        """``n`` samples (int), or the samples at the given indices; metadata is kept.

        ``n`` takes the first ``n`` of shuffled data (Fashion-MNIST, CIFAR, MedMNIST), but
        ``n`` spread evenly over data stored class by class (an ``.npz`` built by concatenating
        each class's images): its first ``n`` would hold the first classes only, and an epoch
        scored on them read 99% while the model knew one class.
        """
        if is_whole(n_or_indices) and grouped_by_class(self.labels):
            n_or_indices = spread_indices(n_or_indices, len(self))
        index = subset_indices(n_or_indices, len(self), self.meta.name)
        return ArrayDataset(self.images[index], self.labels[index], self.meta)


def grouped_by_class(labels: torch.Tensor | np.ndarray) -> bool:
    """Whether every class's samples lie in one contiguous block (sorted by class, in any
    class order), so that the first samples are those of the first classes only."""
    labels = torch.as_tensor(labels).reshape(-1)
    if labels.numel() < 2:
        return False
    blocks = int((labels[1:] != labels[:-1]).sum()) + 1
    return blocks == int(labels.unique().numel()) > 1


def spread_indices(count: Any, length: int) -> torch.Tensor:
    """``count`` indices spread evenly over ``length`` samples (every ``length / count``-th),
    the same ones every time, keeping each class's share where samples lie class by class."""
    count = min(whole_number("subset size", count, minimum=0), length)
    return (torch.arange(count) * length) // max(count, 1)


def subset_indices(n_or_indices: Any, length: int, name: str) -> torch.Tensor:
    """``subset``'s argument as indices into ``length`` samples: ``n`` (a whole number: the first
    ``n``) or indices; fractional ones are refused (2.5 used to become index 2)."""
    if is_whole(n_or_indices):
        count = whole_number("subset size", n_or_indices, minimum=0)
        return torch.arange(min(count, length))
    index = torch.as_tensor(n_or_indices).reshape(-1)
    if index.numel() and (index.is_floating_point() or index.dtype == torch.bool):
        raise ConfigError(f"subset takes a count or whole-number indices, got {index.dtype}")
    index = index.long()
    if index.numel() and (index.min() < -length or index.max() >= length):
        raise ConfigError(f"subset indices must lie in [0, {length}) for dataset {name!r}")
    return index


def channel_mean_std(images: torch.Tensor | np.ndarray) -> tuple[tuple[float, ...], ...]:
    """Exact per-channel mean and (population) std on the 0..1 scale of uint8 (N, C, ...) images.

    A 256-bin histogram per channel gives exact sums in float64 without materialising a float
    copy of the dataset (60000x28x28 takes ~0.1 s).
    """
    array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.dtype != np.uint8 or array.ndim < 2:
        raise DataError(f"channel statistics need uint8 (N, C, ...) images, got {array.dtype}")
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(array.shape[1]):
        counts = np.bincount(array[:, c].reshape(-1), minlength=256).astype(np.float64)
        total = counts.sum()
        if total == 0:
            raise DataError("channel statistics need at least one image")
        mean = float(counts @ values / total)
        var = float(counts @ (values - mean) ** 2 / total)
        means.append(mean)
        stds.append(max(var, 0.0) ** 0.5)
    return tuple(means), tuple(stds)


def seeded_split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into (train, val) index tensors, each sorted, reproducibly from ``seed``.

    ``val`` holds ``round(n * val_fraction)`` indices chosen by a seeded permutation.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    generator = torch.Generator().manual_seed(whole_number("seed", seed, minimum=0))
    perm = torch.randperm(n, generator=generator)
    n_val = int(round(n * val_fraction))
    in_val = torch.zeros(n, dtype=torch.bool)
    in_val[perm[:n_val]] = True  # a mask instead of sorting: O(n) and ascending for free
    return (~in_val).nonzero().flatten(), in_val.nonzero().flatten()

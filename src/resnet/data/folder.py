"""People's own images, one sub-folder per class (torchvision's ImageFolder convention).

Layouts: ``root/<class>/<image>`` (val is a seeded fraction), or ``root/train/<class>``,
``root/val/<class>`` and optionally ``root/test/<class>``; and ImageNet's validation images as
Kaggle ships them, flat, their classes in ``LOC_val_solution.csv`` (``resnet.data.imagenet``).
This module scans and indexes; the DataLoader that decodes batches is
:mod:`resnet.data.folder_loader`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from resnet.checks import is_whole
from resnet.data.decode import open_image, read_image_header
from resnet.data.imagenet import find_labels_file, labelled_flat_folder
from resnet.data.meta import (
    DEFAULT_VAL_FRACTION,
    DatasetMeta,
    channel_mean_std,
    seeded_split,
    spread_indices,
    subset_indices,
)
from resnet.data.preprocess import (
    IMAGE_EXTENSIONS,
    MAX_IMAGE_SIDE,
    pil_to_tensor,
    resize_center_crop,
)
from resnet.errors import ConfigError, DataError, NoSplitError, PixelRangeError

__all__ = ["ImageFolderDataset", "load_image_folder"]

_VAL_DIRS = ("val", "valid", "validation")
_STATS_SAMPLES = 1000  # images used for mean/std: enough for 3 decimals, seconds to decode
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# Largest side a folder's images are resized to: 8192x8192x3 is 200 MB per decoded image.


@dataclass
class ImageFolderDataset:
    """One split of an image folder: ``samples`` are (path, class index) pairs.

    Indexing returns the eval view: (uint8 (C, H, W) tensor at ``meta.image_size``, label).
    """

    root: Path
    samples: list[tuple[Path, int]]
    meta: DatasetMeta
    unreadable: list[Path] = field(default_factory=list)  # skipped while scanning

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> torch.Tensor:
        """The class index of every sample, (N,) int64, as ``ArrayDataset.labels``."""
        return torch.tensor([label for _, label in self.samples], dtype=torch.int64)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = open_image(path, self.meta.channels)
        crop = self.meta.crop_fraction
        return pil_to_tensor(resize_center_crop(image, self.meta.image_size, crop)), label

    def subset(self, n_or_indices: int | Sequence[int] | torch.Tensor) -> ImageFolderDataset:
        """``n`` samples spread evenly over the split (int), or the samples at the given indices.

        A folder's samples lie class by class, so its first ``n`` would be the first classes
        only (``train_subset 500`` of 3,000 photos in 6 classes: one class). Every
        ``len / n``-th sample instead keeps each class's share, the same ones every time.
        """
        if is_whole(n_or_indices):
            n_or_indices = spread_indices(n_or_indices, len(self.samples))
        index = subset_indices(n_or_indices, len(self.samples), self.meta.name)
        return replace(self, samples=[self.samples[i] for i in index.tolist()])


def load_image_folder(
    root: str | os.PathLike,
    split: str = "train",
    *,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
) -> ImageFolderDataset:
    """Scan an image folder and return one split with its metadata.

    ``image_size`` None trains at the images' own size: the median shorter side of (up to 256
    of) the train images, capped at ``DEFAULT_MAX_SIDE`` (224). Resizing 96x96 photos to 224
    would cost 5.4x the compute for no information.

    ``channels`` None detects grayscale (every sampled image is single-channel) vs RGB. Mean/std
    come from up to 1000 images of the train pool at ``image_size``. Unreadable files are left
    out and listed in a warning.
    """
    root = Path(root).expanduser()
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}; use 'train', 'val' or 'test'")
    if image_size is None:
        image_size = median_image_side(root)
    size = (image_size, image_size) if is_whole(image_size) else image_size
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(is_whole(s) and 1 <= s <= MAX_IMAGE_SIDE for s in size)
    ):
        raise ConfigError(
            f"image_size={image_size!r} is not a side or two in range; give whole numbers in "
            f"1..{MAX_IMAGE_SIDE} (e.g. 224)"
        )
    size = (int(size[0]), int(size[1]))
    index = _index_folder(str(root.resolve()), _folder_signature(root), size, channels)
    if index.unreadable:
        warnings.warn(
            _listing(f"skipped unreadable image(s) in {root}", index.unreadable), stacklevel=2
        )
    if index.skipped_links:
        warnings.warn(
            _listing(
                f"did not follow directory link(s) in {root} that loop or leave their class folder",
                index.skipped_links,
            ),
            stacklevel=2,
        )
    if split == "test" and index.test is None:
        warnings.warn(
            f"{root} has no test/ folder; using the validation split as test", stacklevel=2
        )
        split = "val"
    if split == "test":
        samples = index.test
    elif index.val is not None:  # root/train + root/val: the folders are the split
        samples = index.train if split == "train" else index.val
    else:
        if split == "val" and val_fraction <= 0:
            raise NoSplitError(
                f"{root} has no val/ folder and val_fraction=0 leaves no validation split; "
                "pass val_fraction > 0 or add root/val/<class>/ folders"
            )
        train_idx, val_idx = seeded_split(len(index.train), val_fraction, seed)
        picked = train_idx if split == "train" else val_idx
        samples = [index.train[i] for i in picked.tolist()]
    return ImageFolderDataset(root, list(samples), index.meta, list(index.unreadable))


@dataclass(frozen=True)
class _FolderIndex:
    train: tuple[tuple[Path, int], ...]
    val: tuple[tuple[Path, int], ...] | None
    test: tuple[tuple[Path, int], ...] | None
    unreadable: tuple[Path, ...]
    skipped_links: tuple[Path, ...]
    meta: DatasetMeta


DEFAULT_MAX_SIDE = 224  # the ImageNet training size: larger images are scaled down to it


def median_image_side(root: str | os.PathLike, sample: int = 256) -> int:
    """The median shorter side of up to ``sample`` train images (read from their headers, no
    decoding), capped at ``DEFAULT_MAX_SIDE``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found; pass a folder of <class>/<image> files")
    train_dir = root / "train" if (root / "train").is_dir() else root
    classes = sorted(p for p in train_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [f for c in classes for f in _class_files(c, [])]
    if not files:
        return DEFAULT_MAX_SIDE  # the scan that follows says what is wrong with the folder
    step = max(1, len(files) // sample)
    sides = []
    for path in files[::step][:sample]:
        try:
            _, width, height = read_image_header(path)
        except DataError:
            continue  # listed as unreadable by the scan
        sides.append(min(width, height))
    if not sides:
        return DEFAULT_MAX_SIDE
    return int(min(sorted(sides)[len(sides) // 2], DEFAULT_MAX_SIDE))


def _listing(what: str, paths: Sequence[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:20])
    more = f" and {len(paths) - 20} more" if len(paths) > 20 else ""
    return f"{what} ({len(paths)}): {shown}{more}"


def _folder_signature(root: Path) -> tuple:
    # Modification times of the directories two levels deep: adding/removing images or classes
    # invalidates the in-process cache, re-reading unchanged folders does not rescan them.
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; check the path")
    signature = []
    for level_one in [root, *(p for p in root.iterdir() if p.is_dir())]:
        signature.append((str(level_one), level_one.stat().st_mtime_ns))
        if level_one != root:
            signature += [(str(p), p.stat().st_mtime_ns) for p in level_one.iterdir() if p.is_dir()]
    labels = find_labels_file(root)  # a flat folder's labels live in this file (or devkit)
    if labels is not None:
        signature.append((str(labels), labels.stat().st_mtime_ns))
    return tuple(sorted(signature))


@functools.lru_cache(maxsize=8)
def _index_folder(
    root_str: str, _signature: tuple, size: tuple[int, int], channels: int | None
) -> _FolderIndex:
    root = Path(root_str)
    layout_msg = "expected root/<class>/<image> or root/train/<class>/<image>"
    if (root / "train").is_dir():
        train_dir = root / "train"
        val_dir = next((root / d for d in _VAL_DIRS if (root / d).is_dir()), None)
        test_dir = root / "test" if (root / "test").is_dir() else None
    else:
        train_dir, val_dir, test_dir = root, None, None
    classes = sorted(_class_folders(train_dir))
    unreadable: list[Path] = []
    skipped: list[Path] = []
    if not classes:  # ImageNet's validation images, flat: labelled by Kaggle's CSV or the devkit
        images = sorted(p for p in train_dir.iterdir() if p.name.lower().endswith(IMAGE_EXTENSIONS))
        flat = labelled_flat_folder(train_dir, images) if images else None
        if flat is None:
            raise DataError(f"{train_dir} has no class sub-folders; {layout_msg}")
        classes, listed = flat
        train = _readable(listed, unreadable)
    else:
        for name in classes:  # class names end up in checkpoints and logs, which are UTF-8
            if not _printable_utf8(name):
                raise DataError(
                    f"{train_dir}: class folder name {name!r} is not printable UTF-8; rename "
                    "the folder"
                )
        train = _scan(train_dir, classes, unreadable, skipped)
    val = _scan(val_dir, classes, unreadable, skipped) if val_dir else None
    test = _scan(test_dir, classes, unreadable, skipped) if test_dir else None
    if not train:
        raise DataError(
            f"{train_dir} contains no readable images ({IMAGE_EXTENSIONS}); {layout_msg}"
        )
    empty = sorted({classes[c] for _, c in train} ^ set(classes))
    if empty:
        warnings.warn(f"{train_dir}: class folder(s) without images: {empty}", stacklevel=3)

    channels, mean, std, bad = _statistics(train, size, channels)
    if bad:  # decoding failures that the header check could not see (e.g. truncated data)
        unreadable += bad
        bad_set = set(bad)
        train = [s for s in train if s[0] not in bad_set]
    meta = DatasetMeta(root.name, classes, channels, size, mean, std)
    return _FolderIndex(
        tuple(train),
        None if val is None else tuple(val),
        None if test is None else tuple(test),
        tuple(sorted(unreadable)),
        tuple(skipped),
        meta,
    )


def _class_folders(directory: Path) -> dict[str, str]:
    """``{class name: folder name}`` of the class folders in ``directory``, the class name in
    Unicode NFC. macOS writes names decomposed (NFD: Korean 티셔츠 as its jamo), other systems
    composed, so the same class from two machines looked the same and did not match."""
    found: dict[str, str] = {}
    for folder in sorted(p.name for p in directory.iterdir() if p.is_dir()):
        if folder.startswith("."):
            continue
        name = unicodedata.normalize("NFC", folder)
        if name in found:
            raise DataError(
                f"{directory}: class folders {found[name]!r} and {folder!r} are the same name in "
                "two Unicode forms (one written on macOS); merge them into one folder"
            )
        found[name] = folder
    return found


def _printable_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")  # undecodable bytes in a file name come back as lone surrogates
    except UnicodeEncodeError:
        return False
    return name.isprintable()


def _scan(
    directory: Path, classes: list[str], unreadable: list[Path], skipped: list[Path]
) -> list[tuple[Path, int]]:
    found = _class_folders(directory)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(
            f"{directory} has class folder(s) {unknown} that the train split lacks; every "
            "split must use the train split's class names"
        )
    listed = [
        (path, label)
        for label, name in enumerate(classes)
        if name in found
        for path in _class_files(directory / found[name], skipped)
    ]
    return _readable(listed, unreadable)


def _readable(listed: list[tuple[Path, int]], unreadable: list[Path]) -> list[tuple[Path, int]]:
    """The samples whose header reads (cheap: catches non-images, empty files and decompression
    bombs); the others go to ``unreadable``."""
    samples = []
    for path, label in listed:
        try:
            read_image_header(path)
        except PixelRangeError:
            raise  # a readable image the user must convert, not a broken file to skip
        except DataError:
            unreadable.append(path)
            continue
        samples.append((path, label))
    return samples


def _class_files(class_dir: Path, skipped: list[Path]) -> list[Path]:
    """Image files under ``class_dir``, each real file once, in sorted order.

    A directory link is followed only into a directory inside the class folder that the walk
    has not entered yet, so ``cls/loop -> .`` or ``cls/up -> ..`` cannot repeat files or
    pull in another class's images; such links are appended to ``skipped``.
    """
    base = os.path.realpath(class_dir)
    entered = {base}
    candidates = []
    for folder, dirs, files in os.walk(class_dir, followlinks=True):
        kept = []
        for name in sorted(dirs):
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if os.path.islink(path) and (
                real in entered or os.path.commonpath([base, real]) != base
            ):
                skipped.append(Path(path))
                continue
            entered.add(real)
            kept.append(name)
        dirs[:] = kept  # os.walk descends only into these
        candidates += [(folder, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    paths, seen = [], set()
    for folder, file in sorted(candidates):
        real = os.path.realpath(os.path.join(folder, file))
        if real not in seen:  # a file link to an image already listed is the same sample
            seen.add(real)
            paths.append(Path(folder) / file)
    return paths


def _statistics(
    samples: list[tuple[Path, int]], size: tuple[int, int], channels: int | None
) -> tuple[int, tuple[float, ...], tuple[float, ...], list[Path]]:
    generator = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(samples), generator=generator)[:_STATS_SAMPLES].sort().values
    paths = [samples[i][0] for i in pick.tolist()]
    if channels is None:
        modes = set()
        for path in paths:
            with contextlib.suppress(DataError):
                modes.add(read_image_header(path)[0])
        channels = 1 if modes and modes <= _GRAY_MODES else 3
    tensors, bad = [], []
    for path in paths:
        try:
            image = open_image(path, channels, draft_size=max(size))
        except DataError:
            bad.append(path)
            continue
        tensors.append(pil_to_tensor(resize_center_crop(image, size)))
    if not tensors:
        raise DataError(f"none of the sampled images in {paths[0].parent.parent} could be decoded")
    mean, std = channel_mean_std(torch.stack(tensors))
    return channels, mean, std, bad

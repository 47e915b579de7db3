"""People's own images, one sub-folder per class (torchvision's ImageFolder convention).

Layouts: ``root/<class>/<image>`` (val is a seeded fraction), or ``root/train/<class>``,
``root/val/<class>`` and optionally ``root/test/<class>``. Images are decoded by DataLoader
workers; train batches get random-resized-crop + flip, eval batches resize + centre crop.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.utils.data

from resnet.data.loader import epoch_generator
from resnet.data.meta import DatasetMeta, channel_mean_std, seeded_split
from resnet.data.preprocess import (
    IMAGE_EXTENSIONS,
    normalization_affine,
    open_image,
    pil_to_tensor,
    resize_center_crop,
)
from resnet.errors import ConfigError, DataError

__all__ = [
    "ImageFolderDataset",
    "FolderLoader",
    "load_image_folder",
    "default_num_workers",
    "random_resized_crop_box",
]

_VAL_DIRS = ("val", "valid", "validation")
_STATS_SAMPLES = 1000  # images used for mean/std: enough for 3 decimals, seconds to decode
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


def default_num_workers() -> int:
    return min(4, os.cpu_count() or 1)


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

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = open_image(path, self.meta.channels)
        return pil_to_tensor(resize_center_crop(image, self.meta.image_size)), label

    def subset(self, n_or_indices: int | Sequence[int] | torch.Tensor) -> ImageFolderDataset:
        """The first ``n`` samples (int), or the samples at the given indices."""
        if isinstance(n_or_indices, int):
            picked = self.samples[: max(n_or_indices, 0)]
        else:
            picked = [self.samples[int(i)] for i in torch.as_tensor(n_or_indices).reshape(-1)]
        return replace(self, samples=picked)


def load_image_folder(
    root: str | os.PathLike,
    split: str = "train",
    *,
    image_size: int | tuple[int, int] = 224,
    channels: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> ImageFolderDataset:
    """Scan an image folder and return one split with its metadata.

    ``channels`` None detects grayscale (every sampled image is single-channel) vs RGB. Mean/std
    come from up to 1000 images of the train pool at ``image_size``. Unreadable files are left
    out and listed in a warning.
    """
    root = Path(root).expanduser()
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}; use 'train', 'val' or 'test'")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    index = _index_folder(str(root.resolve()), _folder_signature(root), size, channels)
    if index.unreadable:
        shown = ", ".join(str(p) for p in index.unreadable[:20])
        more = len(index.unreadable) - 20
        warnings.warn(
            f"skipped {len(index.unreadable)} unreadable image(s) in {root}: {shown}"
            + (f" and {more} more" if more > 0 else ""),
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
            raise ConfigError(
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
    meta: DatasetMeta


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
    classes = sorted(
        p.name for p in train_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if not classes:
        raise DataError(f"{train_dir} has no class sub-folders; {layout_msg}")
    unreadable: list[Path] = []
    train = _scan(train_dir, classes, unreadable)
    val = _scan(val_dir, classes, unreadable) if val_dir else None
    test = _scan(test_dir, classes, unreadable) if test_dir else None
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
        meta,
    )


def _scan(directory: Path, classes: list[str], unreadable: list[Path]) -> list[tuple[Path, int]]:
    from PIL import Image, UnidentifiedImageError

    found = sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(
            f"{directory} has class folder(s) {unknown} that the train split lacks; every "
            "split must use the train split's class names"
        )
    samples = []
    for label, name in enumerate(classes):
        if not (directory / name).is_dir():
            continue
        for folder, _, files in sorted(os.walk(directory / name, followlinks=True)):
            for file in sorted(files):
                path = Path(folder) / file
                if not file.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                try:  # header only: cheap, catches non-images and empty files
                    with Image.open(path) as image:
                        image.size  # noqa: B018
                except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
                    unreadable.append(path)
                    continue
                samples.append((path, label))
    return samples


def _statistics(
    samples: list[tuple[Path, int]], size: tuple[int, int], channels: int | None
) -> tuple[int, tuple[float, ...], tuple[float, ...], list[Path]]:
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(samples), generator=generator)[:_STATS_SAMPLES].sort().values
    paths = [samples[i][0] for i in pick.tolist()]
    if channels is None:
        modes = set()
        for path in paths:
            try:
                with Image.open(path) as image:
                    modes.add(image.mode)
            except OSError:
                pass
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


def random_resized_crop_box(
    width: int,
    height: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """(left, top, w, h) of a crop covering ``scale`` of the area with aspect ratio in ``ratio``,
    the Inception-style augmentation used for ImageNet in arXiv 1512.03385 (torchvision's
    RandomResizedCrop algorithm: 10 tries, then a central crop)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


class _FolderView(torch.utils.data.Dataset):
    """Decodes one sample per key (index, epoch); the augmentation RNG is seeded from
    (seed, epoch, index), so results do not depend on which worker decodes the sample."""

    def __init__(self, dataset: ImageFolderDataset, augment: bool, flip: bool, seed: int) -> None:
        self.dataset, self.augment, self.flip, self.seed = dataset, augment, flip, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        from PIL import Image

        index, epoch = key
        if not self.augment:
            return self.dataset[index]
        path, label = self.dataset.samples[index]
        image = open_image(path, self.dataset.meta.channels)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, epoch, index])
        left, top, w, h = random_resized_crop_box(image.width, image.height, rng)
        height, width = self.dataset.meta.image_size
        image = image.resize(
            (width, height), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h)
        )
        if self.flip and rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return pil_to_tensor(image), label


class FolderLoader:
    """DataLoader-backed batches with :class:`~resnet.data.loader.TensorLoader`'s contract:
    ``set_epoch``, ``len()`` = batches, iteration yields normalized float x on ``device`` and
    int64 y; order and augmentation are a pure function of (seed, epoch)."""

    def __init__(
        self,
        dataset: ImageFolderDataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        augment: bool = False,
        flip: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(
                f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        self.dataset, self.meta = dataset, dataset.meta
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.view = _FolderView(dataset, augment, flip, seed)
        self.device, self.dtype, self.channels_last = torch.device(device), dtype, channels_last
        self.num_samples = len(dataset) // world_size
        if self.num_samples == 0:
            raise ConfigError(
                f"image folder {dataset.root} split has {len(dataset)} images, fewer than "
                f"world_size={world_size}; add images or use fewer processes"
            )
        self.scale, self.shift = normalization_affine(self.meta, 2, device=self.device, dtype=dtype)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def epoch_batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        """This rank's batches of (sample index, epoch) keys for ``epoch``."""
        n = len(self.dataset)
        order = (
            torch.randperm(n, generator=epoch_generator(self.seed, epoch)) if self.shuffle else None
        )
        order = (order if order is not None else torch.arange(n)).tolist()
        mine = order[self.rank : self.num_samples * self.world_size : self.world_size]
        return [
            [(i, epoch) for i in mine[start : start + self.batch_size]]
            for start in range(0, len(self) * self.batch_size, self.batch_size)
        ]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = torch.utils.data.DataLoader(
            self.view,
            batch_sampler=self.epoch_batches(self.epoch),
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        for images, labels in loader:
            x = images.to(self.device, non_blocking=True).to(self.dtype)
            x = torch.addcmul(self.shift, x, self.scale)  # (x/255 - mean)/std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, labels.to(self.device, non_blocking=True)

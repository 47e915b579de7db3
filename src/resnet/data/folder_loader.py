"""The DataLoader path for image folders: worker processes decode, the main process normalizes.

Train batches get random-resized-crop + flip, eval batches resize + centre crop (the dataset's
own view). A decoding error in a worker comes back as the one-line ``DataError`` it raised.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator

import numpy as np
import torch
import torch.utils.data

from resnet.data.decode import open_image
from resnet.data.erasing import erase, erasing_boxes
from resnet.data.folder import ImageFolderDataset
from resnet.data.preprocess import normalization_affine, pil_to_tensor
from resnet.data.seeding import EpochLoader, epoch_generator
from resnet.errors import ConfigError, DataError

__all__ = ["FolderLoader", "default_num_workers", "random_resized_crop_box"]


def default_num_workers() -> int:
    return min(4, os.cpu_count() or 1)


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


class FolderLoader(EpochLoader):
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
        erasing: float = 0.0,
        seed: int = 0,
        drop_last: bool = False,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int | None = None,
    ) -> None:
        self._init_epochs(len(dataset), batch_size, rank, world_size, drop_last)
        self.dataset, self.meta = dataset, dataset.meta
        self.shuffle, self.seed = shuffle, seed
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.view = _FolderView(dataset, augment, flip, seed)
        self.erasing = erasing if augment else 0.0
        self.device, self.dtype, self.channels_last = torch.device(device), dtype, channels_last
        if self.num_samples == 0:
            raise ConfigError(
                f"image folder {dataset.root} split has {len(dataset)} images, fewer than "
                f"world_size={world_size}; add images or use fewer processes"
            )
        self.scale, self.shift = normalization_affine(self.meta, 2, device=self.device, dtype=dtype)

    def epoch_batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        """This rank's batches of (sample index, epoch) keys for ``epoch``."""
        return self._epoch_plan(epoch)[0]

    def epoch_erase_boxes(self, epoch: int) -> torch.Tensor | None:
        """This rank's random-erasing boxes for ``epoch``, in batch order (None: no erasing)."""
        return self._epoch_plan(epoch)[1]

    def _epoch_plan(self, epoch: int) -> tuple[list[list[tuple[int, int]]], torch.Tensor | None]:
        """This rank's batches of keys, and its random-erasing boxes in the same order."""
        n = len(self.dataset)
        generator = epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        shard = slice(self.rank, self.num_samples * self.world_size, self.world_size)
        boxes = None
        if self.erasing:
            boxes = erasing_boxes(generator, n, *self.meta.image_size, self.erasing)[shard]
        mine = order[shard].tolist()
        batches = [
            [(i, epoch) for i in mine[start : start + self.batch_size]]
            for start in range(0, len(self) * self.batch_size, self.batch_size)
        ]
        return batches, boxes

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches, boxes = self._epoch_plan(self.epoch)
        loader = torch.utils.data.DataLoader(
            self.view,
            batch_sampler=batches,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        start = 0
        for images, labels in _one_line_errors(loader):
            x = images.to(self.device, non_blocking=True).to(self.dtype)
            x = torch.addcmul(self.shift, x, self.scale)  # (x/255 - mean)/std
            if boxes is not None:
                x = erase(x, boxes[start : start + len(x)])
            start += len(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, labels.to(self.device, non_blocking=True)


def _one_line_errors(loader: torch.utils.data.DataLoader) -> Iterator[tuple]:
    """``loader``'s batches; a ``DataError`` raised in a worker process is re-raised as the
    one-line error it was, not wrapped in the worker's "Original Traceback" text."""
    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except DataError as exc:
            # From a worker it reads "Caught DataError in DataLoader worker process 0.\n
            # Original Traceback (most recent call last):\n...\nresnet.errors.DataError: <msg>".
            if "Original Traceback" not in str(exc):
                raise  # raised in this process (num_workers=0): already one line
            last = str(exc).strip().splitlines()[-1]
            raise DataError(re.sub(r"^[\w.]*DataError: ", "", last)) from None
        yield batch

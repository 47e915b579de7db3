"""The fast path for in-memory datasets, after airbench: the whole dataset is one uint8 tensor on
the training device, batches are index slices of a seeded permutation, and crop/flip act on the
whole batch with tensor ops. No worker processes, no per-sample Python.

All randomness of epoch ``e`` comes from a generator seeded with (seed, e), so a run resumed
from an epoch-end checkpoint sees bitwise the same batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from resnet.checks import switches
from resnet.data.erasing import erase, erasing_boxes
from resnet.data.folder import ImageFolderDataset
from resnet.data.folder_loader import FolderLoader
from resnet.data.meta import ArrayDataset, DatasetMeta
from resnet.data.preprocess import normalization_affine
from resnet.data.seeding import EpochLoader, epoch_generator
from resnet.errors import ConfigError

__all__ = [
    "EpochPlan",
    "TensorLoader",
    "batch_crop_flip",
    "epoch_generator",
    "make_loader",
    "mirror_keeps_class",
]

# Datasets whose classes are not mirror-symmetric (a flipped "2" is not a "2").
_NO_FLIP_DATASETS = frozenset({"mnist"})


def mirror_keeps_class(meta: DatasetMeta) -> bool:
    """Whether a mirrored image keeps its class: not for digits, so MNIST trains without flips
    and is scored without mirrored test-time views."""
    return meta.name not in _NO_FLIP_DATASETS


def batch_crop_flip(
    images: torch.Tensor,
    offsets: torch.Tensor | None = None,
    flips: torch.Tensor | None = None,
    pad: int = 0,
) -> torch.Tensor:
    """Random-crop and mirror a whole batch with one gather.

    ``images`` (B, C, *S) is zero-padded by ``pad`` on every spatial side, then sample ``b``
    takes the window of size S starting at ``offsets[b]`` ((B, len(S)) in [0, 2*pad]), mirrored
    along the last axis where ``flips[b]`` is True. Either may be None (no crop / no flip).
    """
    if offsets is None and flips is None:
        return images
    batch, channels, *spatial = images.shape
    k = len(spatial)
    if offsets is not None:
        if pad > 0:
            images = F.pad(images, (pad,) * (2 * k))  # zero padding, as arXiv 1512.03385 sec. 4.2
        # A view of every window: (B, C, *offsets, *S), then one gather of each sample's window.
        # Indexing dims 0, 2, 3.. (split by the channel slice) gives (B, C, *S), copying whole
        # rows instead of computing an index per pixel.
        windows = images
        for dim, size in enumerate(spatial):
            windows = windows.unfold(2 + dim, size, 1)
        batch_index = torch.arange(batch, device=images.device)
        images = windows[(batch_index, slice(None), *offsets.unbind(1))]
    if flips is not None:
        mirrored = flips.view(batch, *[1] * (k + 1))
        images = torch.where(mirrored, images.flip(-1), images)
    return images


@dataclass
class EpochPlan:
    """Everything random about one epoch on one rank (all on CPU)."""

    order: torch.Tensor  # (n,) sample indices, in the order they are batched
    offsets: torch.Tensor | None  # (n, spatial dims) crop offsets in [0, 2*pad], or None
    flips: torch.Tensor | None  # (n,) bool, or None
    erase_boxes: torch.Tensor | None = None  # (n, 4) random-erasing boxes, or None


class TensorLoader(EpochLoader):
    """Batches of (normalized float x on ``device``, int64 y) from an :class:`ArrayDataset`.

    Call :meth:`set_epoch` before iterating each epoch. ``crop`` defaults to on for 2D images and
    off for volumes (N, C, D, H, W), which are only mirrored along the last axis. ``erasing`` is
    the probability of random erasing (:mod:`resnet.data.erasing`, 2D only) when augmenting.
    """

    def __init__(
        self,
        dataset: ArrayDataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        augment: bool = False,
        pad: int = 4,
        flip: bool = True,
        crop: bool | None = None,
        erasing: float = 0.0,
        seed: int = 0,
        drop_last: bool = False,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not isinstance(dataset, ArrayDataset):
            raise ConfigError(
                f"TensorLoader needs an ArrayDataset, got {type(dataset).__name__}; use "
                "make_loader() for image-folder datasets"
            )
        if pad < 0:
            raise ConfigError(f"pad must be >= 0, got {pad}")
        self._init_epochs(len(dataset), batch_size, rank, world_size, drop_last)
        self.dataset, self.meta = dataset, dataset.meta
        self.shuffle, self.seed = shuffle, seed
        self.spatial_dims = dataset.images.dim() - 2
        self.pad = pad
        self.crop = augment and (self.spatial_dims == 2 if crop is None else crop)
        self.flip = augment and flip
        self.erasing = erasing if augment else 0.0
        side = min(dataset.images.shape[2:], default=0)
        if self.crop and pad >= side:
            raise ConfigError(
                f"pad {pad} is not below the images' side ({side}): a random crop could hold no "
                f"pixel of the image; use a pad below {side} (the paper pads 32x32 images by 4)"
            )
        if self.erasing and self.spatial_dims != 2:
            raise ConfigError(
                f"random_erasing works on 2D images, not {self.spatial_dims}D volumes; "
                "set random_erasing: 0"
            )
        self.device, self.dtype, self.channels_last = torch.device(device), dtype, channels_last
        if self.num_samples == 0:
            raise ConfigError(
                f"dataset {self.meta.name!r} has {len(dataset)} samples, fewer than "
                f"world_size={world_size}; use more data or fewer processes"
            )
        self.images = dataset.images.to(self.device)
        self.labels = dataset.labels.to(self.device)
        self.scale, self.shift = normalization_affine(
            self.meta, self.spatial_dims, device=self.device, dtype=dtype
        )

    def epoch_plan(self, epoch: int) -> EpochPlan:
        """Order and augmentation of ``epoch`` on this rank; a pure function of (seed, epoch)."""
        n = len(self.dataset)
        generator = epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        # Drawn for every position of the full permutation, so a sample's augmentation does not
        # depend on batch size or world size.
        flips = torch.rand(n, generator=generator) < 0.5 if self.flip else None
        offsets = None
        if self.crop:
            offsets = torch.randint(
                0, 2 * self.pad + 1, (n, self.spatial_dims), generator=generator
            )
        boxes = None
        if self.erasing:
            boxes = erasing_boxes(generator, n, *self.dataset.images.shape[-2:], self.erasing)
        shard = slice(self.rank, self.num_samples * self.world_size, self.world_size)
        return EpochPlan(
            order=order[shard],
            offsets=None if offsets is None else offsets[shard],
            flips=None if flips is None else flips[shard],
            erase_boxes=None if boxes is None else boxes[shard],
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        plan = self.epoch_plan(self.epoch)
        order = plan.order.to(self.device)
        offsets = None if plan.offsets is None else plan.offsets.to(self.device)
        flips = None if plan.flips is None else plan.flips.to(self.device)
        boxes = None if plan.erase_boxes is None else plan.erase_boxes.to(self.device)
        memory_format = torch.channels_last if self.spatial_dims == 2 else torch.channels_last_3d
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            window = slice(start, start + self.batch_size)
            index = order[window]
            x = batch_crop_flip(
                self.images[index],
                None if offsets is None else offsets[window],
                None if flips is None else flips[window],
                self.pad,
            )
            x = torch.addcmul(self.shift, x.to(self.dtype), self.scale)  # (x/255 - mean)/std
            if boxes is not None:
                x = erase(x, boxes[window])
            if self.channels_last:
                x = x.contiguous(memory_format=memory_format)
            yield x, self.labels[index]


def make_loader(
    dataset: Any,
    batch_size: int,
    *,
    train: bool,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    augment: bool | None = None,
    flip: bool | None = None,
    pad: int = 4,
    erasing: float = 0.0,
    drop_last: bool = False,
    channels_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int | None = None,
) -> Any:
    """The right loader for ``dataset``: shuffled and augmented when ``train``, in order when not.

    An :class:`ArrayDataset` gets a :class:`TensorLoader` (``num_workers`` is ignored); an image
    folder gets a DataLoader-backed loader with the same iteration contract. ``flip`` defaults to
    on except for datasets whose classes are not mirror-symmetric (MNIST digits).
    """
    switches(train=train, drop_last=drop_last, channels_last=channels_last)
    meta: DatasetMeta = dataset.meta
    augment = train if augment is None else augment
    flip = mirror_keeps_class(meta) if flip is None else flip
    shared = dict(
        shuffle=train, augment=augment, flip=flip, erasing=erasing, seed=seed,
        drop_last=drop_last, device=device, dtype=dtype, channels_last=channels_last,
        rank=rank, world_size=world_size,
    )  # fmt: skip
    if isinstance(dataset, ArrayDataset):
        return TensorLoader(dataset, batch_size, pad=pad, **shared)
    if not isinstance(dataset, ImageFolderDataset):
        raise ConfigError(
            f"make_loader got {type(dataset).__name__}; pass a dataset from load_dataset()"
        )
    return FolderLoader(dataset, batch_size, num_workers=num_workers, **shared)

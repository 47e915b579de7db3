"""A small detection task from real data: Fashion-MNIST items pasted onto a larger canvas.

Each canvas (default 128x128, grayscale, black background) holds 1-4 items, each a real
Fashion-MNIST image resized to a random square side (default 20-56 px) and placed at a random
position where it overlaps no other item, so every box is exact: tight around the nonzero pixels
of its item. Labels are 1..10 (the Fashion-MNIST class + 1), since torchvision detectors reserve
0 for the background. Generation is a pure function of the items and the seed.

On disk (``save_canvases``/``load_canvases``) a set is one ``.npz`` with ``images`` uint8
(N, C, H, W), ``boxes`` float32 (K, 4) as ``x0, y0, x1, y1`` in pixels (x1, y1 exclusive),
``labels`` int64 (K,), ``offsets`` int64 (N + 1,) so that image ``i`` owns rows
``offsets[i]:offsets[i + 1]``, and ``class_names`` (10 strings, without the background).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from resnet.checks import is_whole, whole_number
from resnet.errors import ConfigError, DataError
from resnet.io import atomic_write

__all__ = [
    "CanvasSet",
    "build_canvases",
    "fashion_mnist_canvases",
    "save_canvases",
    "load_canvases",
    "check_item_sizes",
    "load_items",
]

Seed = Union[int, Sequence[int]]
# Canvases are drawn a whole set at a time, (N, side, side) uint8: the side and the set's bytes
# are bounded so that a typo (--canvas-size 100000: 18.6 GiB for 2 canvases) is an error first.
MAX_CANVAS_SIZE = 1024
MAX_CANVAS_BYTES = 4 << 30
_PLACEMENT_TRIES = 30  # random positions tried per item before the item is left out


@dataclass
class CanvasSet:
    """Canvases with their ground truth, ready for torchvision's detectors."""

    images: Tensor  # uint8 (N, C, H, W)
    boxes: list[Tensor]  # per image float32 (k, 4), x0 y0 x1 y1 in pixels
    labels: list[Tensor]  # per image int64 (k,), 1..num_classes
    class_names: list[str]  # the item classes; label i names class_names[i - 1]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        """Classes including the background, as torchvision's ``num_classes`` counts them."""
        return len(self.class_names) + 1

    def targets(self, indices: Sequence[int], device: Union[str, torch.device] = "cpu") -> list:
        """Ground truth of ``indices`` as torchvision's list of ``{"boxes", "labels"}`` dicts."""
        return [
            {"boxes": self.boxes[i].to(device), "labels": self.labels[i].to(device)}
            for i in indices
        ]


def build_canvases(
    item_images: Tensor,
    item_labels: Tensor,
    num_canvases: int,
    *,
    class_names: Sequence[str],
    canvas_size: int = 128,
    channels: int = 1,
    items_per_canvas: tuple[int, int] = (1, 4),
    item_sizes: tuple[int, int] = (20, 56),
    seed: Seed = 0,
) -> CanvasSet:
    """Paste random items onto ``num_canvases`` blank canvases.

    Args:
        item_images: uint8 (M, 1, h, w) or (M, h, w) single-channel items on a black background.
        item_labels: int (M,) 0-based classes of the items.
        class_names: names of the 0-based classes.
        canvas_size: side of the square canvas in pixels.
        channels: 1 (grayscale) or 3 (the gray value repeated).
        items_per_canvas: inclusive range of items per canvas.
        item_sizes: inclusive range of the resized item side in pixels.
        seed: an int or a sequence of ints (e.g. ``(seed, epoch)``) for numpy's generator.
    """
    _check_options(item_images, item_labels, num_canvases, canvas_size, channels,
                   items_per_canvas, item_sizes)  # fmt: skip
    for part in seed if isinstance(seed, Sequence) else [seed]:  # numpy: "expected non-negative"
        whole_number("seed", part, minimum=0)
    items = item_images.reshape(item_images.shape[0], *item_images.shape[-2:])
    rng = np.random.default_rng(list(seed) if isinstance(seed, Sequence) else seed)
    canvases = np.zeros((num_canvases, canvas_size, canvas_size), dtype=np.uint8)
    all_boxes: list[Tensor] = []
    all_labels: list[Tensor] = []
    for index in range(num_canvases):
        count = int(rng.integers(items_per_canvas[0], items_per_canvas[1] + 1))
        placed: list[tuple[int, int, int]] = []  # (x, y, side) squares already on the canvas
        boxes, labels = [], []
        for _ in range(count):
            item_index = int(rng.integers(items.shape[0]))
            side = int(rng.integers(item_sizes[0], item_sizes[1] + 1))
            position = _free_position(rng, placed, side, canvas_size)
            if position is None:
                continue  # the canvas is too full for this size; fewer items, still exact boxes
            x, y = position
            item = _resize_item(items[item_index], side)  # (side, side) uint8
            rows, cols = np.nonzero(item)
            if rows.size == 0:
                continue
            canvases[index, y : y + side, x : x + side] = item
            placed.append((x, y, side))
            # x1/y1 are exclusive pixel edges, so a box covers exactly its pixels.
            boxes.append([x + cols.min(), y + rows.min(), x + cols.max() + 1, y + rows.max() + 1])
            labels.append(int(item_labels[item_index]) + 1)
        all_boxes.append(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        all_labels.append(torch.tensor(labels, dtype=torch.int64))
    images = torch.from_numpy(canvases)[:, None].repeat(1, channels, 1, 1)
    return CanvasSet(images, all_boxes, all_labels, list(class_names))


def fashion_mnist_canvases(
    split: str,
    num_canvases: int,
    *,
    seed: Seed = 0,
    data_dir: Union[str, os.PathLike, None] = None,
    **options,
) -> CanvasSet:
    """Canvases of real Fashion-MNIST items of ``split`` ("train", "val" or "test").

    Train on ``"train"`` items and evaluate on ``"test"`` items, so the evaluation never sees an
    item the detector was trained on. ``options`` go to ``build_canvases``.
    """
    items, class_names = load_items(split, data_dir)
    return build_canvases(
        items.images, items.labels, num_canvases, class_names=class_names, seed=seed, **options
    )


def load_items(split: str, data_dir: Union[str, os.PathLike, None] = None):
    """Fashion-MNIST ``split``, the items canvases are made of, as an ``ArrayDataset`` and its
    class names."""
    from resnet.data import load_dataset

    dataset = load_dataset("fashion-mnist", split, data_dir=data_dir)
    return dataset, list(dataset.meta.class_names)


def save_canvases(canvases: CanvasSet, path: Union[str, os.PathLike]) -> Path:
    """Write ``canvases`` to one ``.npz`` file atomically (the layout is in the module doc)."""
    path = Path(path)
    counts = [len(labels) for labels in canvases.labels]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    with atomic_write(path) as handle:
        np.savez_compressed(
            handle,
            images=canvases.images.numpy(),
            boxes=torch.cat(canvases.boxes).reshape(-1, 4).numpy(),
            labels=torch.cat(canvases.labels).numpy(),
            offsets=offsets,
            class_names=np.array(canvases.class_names, dtype=str),
        )
    return path


def load_canvases(path: Union[str, os.PathLike]) -> CanvasSet:
    """Read a set written by ``save_canvases``; a missing or malformed file is a ``DataError``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: canvas file not found; write one with save_canvases()")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as error:  # zipfile and numpy each raise their own types
        raise DataError(f"{path}: not a readable .npz canvas file ({error})") from None
    needed = ("images", "boxes", "labels", "offsets", "class_names")
    if any(key not in arrays for key in needed):
        raise DataError(f"{path}: a canvas file needs the arrays {', '.join(needed)}")
    offsets = arrays["offsets"]
    boxes, labels = torch.from_numpy(arrays["boxes"]), torch.from_numpy(arrays["labels"])
    if arrays["images"].ndim != 4 or len(offsets) != len(arrays["images"]) + 1:
        raise DataError(f"{path}: images must be (N, C, H, W) with N + 1 offsets")
    return CanvasSet(
        torch.from_numpy(arrays["images"]),
        [boxes[a:b] for a, b in zip(offsets[:-1], offsets[1:])],
        [labels[a:b] for a, b in zip(offsets[:-1], offsets[1:])],
        [str(name) for name in arrays["class_names"]],
    )


def _free_position(
    rng: np.random.Generator, placed: list[tuple[int, int, int]], side: int, canvas_size: int
) -> Optional[tuple[int, int]]:
    for _ in range(_PLACEMENT_TRIES):
        x, y = (int(v) for v in rng.integers(0, canvas_size - side + 1, size=2))
        if all(
            x + side <= px or px + pside <= x or y + side <= py or py + pside <= y
            for px, py, pside in placed
        ):
            return x, y
    return None


def _resize_item(item: Tensor, side: int) -> np.ndarray:
    # Antialiasing keeps thin parts (straps, trouser gaps) when an item shrinks below 28 px.
    resized = F.interpolate(
        item[None, None].float(), size=(side, side), mode="bilinear", antialias=True
    )
    return resized[0, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def check_item_sizes(item_sizes: tuple[int, int], canvas_size: int, num_canvases: int = 1) -> None:
    """``ConfigError`` unless items ``item_sizes`` (low, high) px wide fit on the canvas, and
    the canvas side and ``num_canvases`` of them stay within the bounds above."""
    if not is_whole(canvas_size) or not 1 <= canvas_size <= MAX_CANVAS_SIZE:
        raise ConfigError(
            f"canvas_size {canvas_size} is out of range; use 1 to {MAX_CANVAS_SIZE} pixels"
        )
    if num_canvases * canvas_size**2 > MAX_CANVAS_BYTES:
        gib = num_canvases * canvas_size**2 / 2**30
        raise ConfigError(
            f"{num_canvases} canvases of {canvas_size}x{canvas_size} take {gib:.1f} GiB, more "
            f"than {MAX_CANVAS_BYTES >> 30} GiB; use fewer (train_images) or smaller canvases"
        )
    small, large = item_sizes
    if not 4 <= small <= large <= canvas_size:
        raise ConfigError(
            f"item_sizes {tuple(item_sizes)} must satisfy 4 <= low <= high <= canvas_size "
            f"{canvas_size}; use a larger canvas or smaller items"
        )


def _check_options(
    item_images: Tensor,
    item_labels: Tensor,
    num_canvases: int,
    canvas_size: int,
    channels: int,
    items_per_canvas: tuple[int, int],
    item_sizes: tuple[int, int],
) -> None:
    if item_images.dtype != torch.uint8 or item_images.dim() not in (3, 4):
        raise DataError("item_images must be a uint8 tensor (M, 1, h, w) or (M, h, w)")
    if item_images.dim() == 4 and item_images.shape[1] != 1:
        raise DataError(f"items must have one channel, got {item_images.shape[1]}")
    if item_images.shape[0] == 0 or item_images.shape[0] != len(item_labels):
        raise DataError("item_images and item_labels must be non-empty and of the same length")
    if num_canvases < 1:
        raise ConfigError(f"num_canvases must be at least 1, got {num_canvases}")
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    low, high = items_per_canvas
    if not 1 <= low <= high:
        raise ConfigError(f"items_per_canvas must be 1 <= low <= high, got {items_per_canvas}")
    check_item_sizes(item_sizes, canvas_size, num_canvases)

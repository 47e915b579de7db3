"""Turning arbitrary images into model input: the path ``predict`` and ``explain`` take, and the
eval transform of image folders (so both see the same pixels)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from resnet.checks import is_whole
from resnet.data.decode import convert_image, open_image
from resnet.data.meta import DatasetMeta
from resnet.errors import ConfigError, DataError

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "IMAGE_EXTENSIONS",
    "open_image",
    "resize_center_crop",
    "resize_arrays",
    "pil_to_tensor",
    "normalization_affine",
    "preprocess_images",
    "input_files",
]

# torchvision's ImageFolder extensions.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
MAX_IMAGE_SIDE = 8192  # the largest side images are resized to (image_size)
VOLUME_EXTENSIONS = (".npy",)  # uint8 (D, H, W) arrays, as MedMNIST 3D holds them


def input_files(inputs: Sequence[str | os.PathLike], meta: DatasetMeta) -> list[Path]:
    """The files ``predict`` and ``explain`` read: each file as given, each folder replaced by
    the images (``.npy`` volumes for 3D checkpoints) anywhere inside it, in sorted order.
    ``inputs`` is a list of paths, or one path.

    Raises ``DataError`` for a folder that holds none, naming the suffixes looked for.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]  # one path, not a string of one-letter paths
    suffixes = VOLUME_EXTENSIONS if len(meta.image_size) == 3 else IMAGE_EXTENSIONS
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(
            Path(folder, name)
            for folder, _, names in os.walk(path)  # symlinked folders are not followed
            for name in names
            if name.lower().endswith(suffixes) and not name.startswith(".")
        )
        if not found:
            raise DataError(
                f"{path}: folder holds no files ending in {', '.join(suffixes)}; "
                "pass image files or a folder of them"
            )
        files.extend(found)
    return files


def resize_center_crop(
    image: Image.Image, size: Sequence[int], crop_fraction: float = 1.0
) -> Image.Image:
    """Scale (bilinear, keeping the aspect ratio) until ``size / crop_fraction`` is covered,
    then take the central ``size`` = (H, W) window: torchvision's ImageNet evaluation (resize
    to 256, crop 224) with ``crop_fraction`` 0.875. An image already at ``size`` is returned
    unchanged when ``crop_fraction`` is 1."""
    from PIL import Image

    height, width = int(size[0]), int(size[1])
    if image.size == (width, height) and crop_fraction == 1.0:
        return image
    cover_h, cover_w = height / crop_fraction, width / crop_fraction
    # torchvision's arithmetic, so its ImageNet evaluation is reproduced pixel for pixel: the
    # side that decides the scale gets its size exactly, the other one rounds down.
    if cover_h / image.height >= cover_w / image.width:
        new_h = round(cover_h)
        new_w = max(round(cover_w), int(image.width * new_h / image.height))
    else:
        new_w = round(cover_w)
        new_h = max(round(cover_h), int(image.height * new_w / image.width))
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = int(round((new_w - width) / 2.0)), int(round((new_h - height) / 2.0))
    return image.crop((left, top, left + width, top + height))


def resize_arrays(images: torch.Tensor | np.ndarray, size: int | Sequence[int]) -> torch.Tensor:
    """uint8 (N, C, H, W) images or (N, C, D, H, W) volumes at ``size`` (a side, or one per
    spatial dim).

    Images: each channel resized as :func:`resize_center_crop` resizes an image file (PIL
    bilinear, aspect kept, centre crop; torchvision's ``Resize`` of the PIL images its datasets
    yield), so a model trained on resized arrays sees the pixels ``predict`` makes of the same
    image saved to a file. Volumes: trilinearly to exactly ``size``, as MONAI's
    ``Resize(spatial_size, mode="trilinear")`` resizes a scan, rounded back to uint8."""
    array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.dtype != np.uint8 or array.ndim not in (4, 5):
        shape = "x".join(map(str, array.shape[2:]))
        raise DataError(
            f"image_size resizes uint8 (N, C, H, W) images and (N, C, D, H, W) volumes, not "
            f"{shape} {array.dtype} arrays"
        )
    dims = array.ndim - 2
    sides = (size,) * dims if is_whole(size) else tuple(size) if isinstance(size, Sequence) else ()
    if len(sides) != dims or not all(is_whole(s) and 1 <= s <= MAX_IMAGE_SIDE for s in sides):
        raise ConfigError(
            f"image_size must be a whole number in 1..{MAX_IMAGE_SIDE} (or {dims} of them for "
            f"these {dims}D arrays), got {size!r}"
        )
    sides = tuple(int(s) for s in sides)
    n, channels = array.shape[:2]
    needed, free = n * channels * math.prod(sides), _free_memory()
    if free is not None and needed > free:
        raise DataError(
            f"{n} images at {'x'.join(map(str, sides[::-1]))} need {needed / 2**30:.1f} GiB, "
            f"more than the {free / 2**30:.1f} GiB of memory free; choose a smaller image_size"
        )
    out = np.empty((n, channels, *sides), dtype=np.uint8)
    for i in range(n):
        if dims == 3:  # one volume at a time: float32 copies of one scan, not of the dataset
            volume = torch.from_numpy(array[i : i + 1]).float()
            resized = F.interpolate(volume, sides, mode="trilinear", align_corners=False)
            out[i] = resized[0].round().clamp(0, 255).to(torch.uint8).numpy()
            continue
        for c in range(channels):
            plane = resize_center_crop(_pil_image(array[i, c]), sides)
            out[i, c] = np.asarray(plane, dtype=np.uint8)
    return torch.from_numpy(out)


def _pil_image(plane: np.ndarray) -> Image.Image:
    from PIL import Image

    return Image.fromarray(plane)


def _free_memory() -> int | None:
    """Bytes of physical memory available now (None where the system does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """uint8 (C, H, W) tensor of an ``L`` or ``RGB`` image."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def normalization_affine(
    meta: DatasetMeta,
    spatial_dims: int,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of shape (1, C, 1, ...) such that ``x * scale + shift == (x/255 - mean)/std``
    for uint8 ``x``, so normalization is one fused multiply-add (``torch.addcmul``)."""
    mean = torch.tensor(meta.mean, dtype=torch.float64)
    std = torch.tensor(meta.std, dtype=torch.float64)
    if (std <= 0).any():
        raise DataError(f"dataset {meta.name!r}: std must be positive, got {meta.std}")
    shape = (1, meta.channels) + (1,) * spatial_dims
    scale = (1.0 / (255.0 * std)).reshape(shape)
    shift = (-mean / std).reshape(shape)
    return scale.to(device=device, dtype=dtype), shift.to(device=device, dtype=dtype)


def preprocess_images(
    images: Any,
    meta: DatasetMeta,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Normalized model input (N, C, H, W) (or (N, 1, D, H, W) for volumes) matching ``meta``.

    ``images`` is one item or a list of: PIL images, file paths, uint8 numpy arrays (H, W) or
    (H, W, C), uint8 torch tensors (C, H, W). 2D images are converted to L/RGB per
    ``meta.channels`` and resized (aspect kept, centre crop) to ``meta.image_size``; volumes
    must be uint8 (D, H, W) arrays (or ``.npy`` files of them) already of ``meta.image_size``.
    """
    if not isinstance(images, (list, tuple)):
        images = [images]
    if not images:
        raise DataError("preprocess_images got no images; pass at least one image or path")
    if len(meta.image_size) == 3:
        batch = torch.stack([_volume_tensor(item, meta) for item in images])
    else:
        batch = torch.stack([_image_tensor(item, meta) for item in images])
    scale, shift = normalization_affine(meta, batch.dim() - 2, device=device, dtype=dtype)
    return torch.addcmul(shift, batch.to(device=device, dtype=dtype), scale)


def _image_tensor(item: Any, meta: DatasetMeta) -> torch.Tensor:
    from PIL import Image

    if isinstance(item, (str, os.PathLike)):
        image = open_image(Path(item), meta.channels)
    elif isinstance(item, Image.Image):
        image = convert_image(item, meta.channels)
    else:
        image = convert_image(Image.fromarray(_as_hwc_uint8(item)), meta.channels)
    return pil_to_tensor(resize_center_crop(image, meta.image_size, meta.crop_fraction))


def _as_hwc_uint8(item: Any) -> np.ndarray:
    if isinstance(item, torch.Tensor):
        item = item.detach().cpu().numpy()
        if item.ndim == 3:
            item = item.transpose(1, 2, 0)  # torch images are (C, H, W)
    array = np.asarray(item) if isinstance(item, np.ndarray) else None
    if array is None or array.dtype != np.uint8:
        got = f"{array.dtype} array" if array is not None else type(item).__name__
        raise DataError(
            f"cannot use {got} as an image; pass a PIL image, a file path or a uint8 array"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise DataError(f"uint8 image array has shape {array.shape}; expected (H, W) or (H, W, 3)")
    return np.ascontiguousarray(array)


def _volume_tensor(item: Any, meta: DatasetMeta) -> torch.Tensor:
    expected = tuple(meta.image_size)
    if isinstance(item, (str, os.PathLike)):
        return torch.from_numpy(_read_volume(Path(item), expected))[None]
    array = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
    if array.dtype != np.uint8 or array.shape != expected:
        raise DataError(
            f"volume input must be a uint8 array of shape {expected}, got "
            f"{array.dtype} {array.shape}; resample the volume first"
        )
    return torch.from_numpy(array.copy())[None]


def _read_volume(path: Path, expected: tuple[int, ...]) -> np.ndarray:
    """A ``.npy`` volume file, checked to be uint8 of the training shape ``expected``."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path")
    try:
        volume = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy volume ({error})") from None
    if not isinstance(volume, np.ndarray):
        volume.close()  # an .npz archive, opened lazily
        raise DataError(f"{path}: an .npz archive, not one volume; save the volume with np.save")
    if volume.dtype != np.uint8 or volume.shape != expected:
        got = f"{volume.dtype} {volume.shape}"
        raise DataError(
            f"{path}: volume is {got}; expected a uint8 .npy of shape {expected} "
            "(one channel, resampled to the training size)"
        )
    return volume

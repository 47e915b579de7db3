"""Decoding image files honestly: every failure is one ``DataError`` naming the file.

Bit depth is respected (16-bit scans are scaled, not clipped), photos are turned upright as
their EXIF orientation says (as every photo viewer shows them), decompression bombs are refused
from the header before any pixel is decoded, and no read asks for more bytes than the file holds.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from resnet.errors import DataError, PixelRangeError

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = ["convert_image", "open_image", "read_image_header", "read_image_tensor"]

# Integer grayscale modes wider than 8 bits; "I" holds 16-bit PNG/PGM data in older PIL versions.
_WIDE_GRAY_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
# Where mode "I" is 16-bit data: PNG and PGM files (and images built in memory). Elsewhere (a
# TIFF's 32-bit integers) and in mode "F" (32-bit floats) no white level is fixed by the format,
# so any scaling would be a guess (PIL's own convert clips: a 0..1 float scan comes out black).
_SIXTEEN_BIT_I_FORMATS = frozenset({"PNG", "PPM", None})


def open_image(
    path: str | os.PathLike, channels: int, *, draft_size: int | None = None
) -> Image.Image:
    """Decode ``path`` fully as ``L`` (channels=1) or ``RGB`` (channels=3).

    16-bit grayscale (modes ``I;16*`` and ``I``, e.g. medical PNGs) is scaled by its bit depth,
    so it decodes like its 8-bit twin. ``draft_size`` lets the JPEG decoder shrink by 2/4/8
    while decoding (much faster when only a small version is needed, e.g. for statistics).
    Raises ``DataError`` naming the file for unreadable, truncated or oversized images.
    """
    with _opened(path) as image:
        if draft_size is not None:
            image.draft(_pil_mode(channels), (draft_size, draft_size))
        return convert_image(image, channels, path)


def read_image_tensor(path: str | os.PathLike, channels: int) -> torch.Tensor:
    """``open_image``'s picture as a uint8 tensor (channels, H, W)."""
    import torch

    picture = open_image(path, channels)
    array = np.asarray(picture, dtype=np.uint8).reshape(picture.height, picture.width, channels)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def read_image_header(path: str | os.PathLike) -> tuple[str, int, int]:
    """(PIL mode, width, height) of ``path`` from its header, without decoding the pixels.

    Raises ``DataError`` naming the file if it is not an image or has more pixels than
    ``PIL.Image.MAX_IMAGE_PIXELS``, ``PixelRangeError`` if its pixels are 32-bit integers or
    floats (no fixed white level).
    """
    with _opened(path) as image:
        _check_fixed_range(image, path)
        turned = _orientation(image) in _QUARTER_TURNS
        return image.mode, *((image.height, image.width) if turned else image.size)


def convert_image(image: Image.Image, channels: int, source: object = "image") -> Image.Image:
    """A new, fully loaded ``L`` (channels=1) or ``RGB`` (channels=3) copy of ``image``, turned
    upright as its EXIF orientation says."""
    mode = _pil_mode(channels)
    _check_fixed_range(image, source)
    image = _upright(image)
    if image.mode in _WIDE_GRAY_MODES:
        image = _gray16_to_8bit(image, source)
    elif image.mode in ("P", "PA"):
        image = image.convert("RGBA")  # expand the palette first (PIL warns otherwise)
    return image.convert(mode)


_ORIENTATION_TAG = 0x0112  # EXIF "Orientation": how a viewer turns the stored pixels upright
_QUARTER_TURNS = frozenset({5, 6, 7, 8})  # orientations that swap width and height


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block: the pixels are still usable as stored
        return 1
    return value if isinstance(value, int) else 1


def _upright(image: Image.Image) -> Image.Image:
    """``image`` turned as photo viewers show it: phone cameras store pixels sideways and record
    the turn in EXIF, so a photo that looks upright everywhere would be read lying on its side."""
    if _orientation(image) in (1, 0):
        return image
    from PIL import ImageOps

    return ImageOps.exif_transpose(image)


class _ClampedReader(io.BufferedReader):
    """A file whose reads never ask for more than it still holds. PIL reads a PNG chunk's claimed
    length in one call, so a 60-byte file could otherwise allocate 2 GB."""

    def __init__(self, raw: io.RawIOBase, size: int) -> None:
        super().__init__(raw)
        self.size = size

    def read(self, n: int | None = -1) -> bytes:
        if n is not None and n > 0:
            n = min(n, max(self.size - self.tell(), 0)) or 1  # 1 at the end: read() sees EOF
        return super().read(n)


@contextlib.contextmanager
def _opened(path: str | os.PathLike) -> Iterator[Image.Image]:
    """``Image.open`` (header only) that refuses decompression bombs before any pixel is read;
    any error while the image is used (decoding) becomes a ``DataError`` naming the file."""
    from PIL import Image

    try:
        with open(path, "rb", buffering=0) as raw, warnings.catch_warnings():
            # PIL only warns between 1x and 2x the limit, then decodes anyway: make it an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(_ClampedReader(raw, os.fstat(raw.fileno()).st_size)) as image:
                yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(
            f"{path}: image has more pixels than the limit of {Image.MAX_IMAGE_PIXELS} "
            "(PIL.Image.MAX_IMAGE_PIXELS); downscale it, or raise the limit for trusted files"
        ) from exc
    except DataError:
        raise
    except Exception as exc:  # PIL's format plugins raise many exception types on bad data
        raise _unreadable(path, exc) from exc


def _unreadable(path: str | os.PathLike, exc: BaseException) -> DataError:
    from PIL import UnidentifiedImageError

    if isinstance(exc, FileNotFoundError):
        return DataError(f"{path}: no such file; check the path")
    if isinstance(exc, IsADirectoryError):
        return DataError(f"{path}: a folder, not an image; pass the image files in it")
    if isinstance(exc, UnidentifiedImageError):  # its text names our reader, not the file
        return DataError(
            f"{path}: not a readable image (no image format recognised in the file); "
            "replace or delete the file"
        )
    lines = str(exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    return DataError(f"{path}: not a readable image ({reason}); replace or delete the file")


def _pil_mode(channels: int) -> str:
    if channels not in (1, 3):
        raise DataError(f"images must have 1 or 3 channels, got {channels}")
    return "L" if channels == 1 else "RGB"


def _check_fixed_range(image: Image.Image, source: object) -> None:
    """Refuse pixels whose white level the file does not fix (32-bit integer or float)."""
    if image.mode == "F" or (image.mode == "I" and image.format not in _SIXTEEN_BIT_I_FORMATS):
        kind = "floating-point" if image.mode == "F" else "32-bit integer"
        raise PixelRangeError(
            f"{source}: {kind} pixels (PIL mode {image.mode}) have no fixed black and white "
            "level; save the image as 8- or 16-bit (e.g. scaled to 0..255 or 0..65535)"
        )


def _gray16_to_8bit(image: Image.Image, source: object) -> Image.Image:
    # PIL's own convert("L") clips 16-bit values at 255, so a 16-bit scan would come out almost
    # white. Scale instead: v/65535 of full scale, rounded (an 8-bit twin c*257 maps back to c).
    from PIL import Image

    values = np.asarray(image)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise DataError(
            f"{source}: {image.mode} pixels span {values.min()}..{values.max()}, outside the "
            "16-bit range 0..65535; rescale the image to 8 or 16 bits"
        )
    return Image.fromarray(((values.astype(np.uint32) + 128) // 257).astype(np.uint8))

"""Honest image decoding: 16-bit scaling, decompression bombs, corrupt files (also in workers)."""

import struct
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.data import DatasetMeta, load_dataset, make_loader, open_image, preprocess_images
from resnet.data.decode import read_image_header
from resnet.errors import DataError, PixelRangeError


def sixteen_bit_pixels(seed=0, shape=(12, 10)):
    return np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)


def save_16bit(path, pixels):
    """``pixels`` as the 16-bit file its suffix names; returns the mode PIL opens it in."""
    if path.suffix == ".tif":  # big-endian 16-bit TIFF (convert("I;16B") would clip)
        height, width = pixels.shape
        Image.frombytes("I;16B", (width, height), pixels.astype(">u2").tobytes()).save(path)
    else:  # PNG opens as I;16, 16-bit PGM as I
        Image.fromarray(pixels).save(path)
    with Image.open(path) as image:
        return image.mode


@pytest.mark.parametrize(
    "suffix, mode", [(".png", "I;16"), (".tif", "I;16B"), (".pgm", "I")], ids=["png", "tif", "pgm"]
)
@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_image_decodes_like_its_8bit_twin(tmp_path, suffix, mode, channels):
    pixels = sixteen_bit_pixels()
    assert save_16bit(tmp_path / f"scan{suffix}", pixels) == mode
    Image.fromarray((pixels >> 8).astype(np.uint8)).save(tmp_path / "twin.png")
    wide = np.asarray(open_image(tmp_path / f"scan{suffix}", channels), dtype=np.int16)
    twin = np.asarray(open_image(tmp_path / "twin.png", channels), dtype=np.int16)
    assert wide.shape == twin.shape == ((12, 10) if channels == 1 else (12, 10, 3))
    assert np.abs(wide - twin).max() <= 1  # within one 8-bit step, never clipped to 255
    assert abs(wide.mean() - twin.mean()) < 1.0


def test_16bit_pil_image_and_path_give_the_same_model_input(tmp_path):
    pixels = sixteen_bit_pixels(1, (8, 8))
    save_16bit(tmp_path / "scan.png", pixels)
    Image.fromarray((pixels >> 8).astype(np.uint8)).save(tmp_path / "twin.png")
    meta = DatasetMeta("scans", ["a", "b"], 1, (8, 8), (0.5,), (0.25,))
    from_path = preprocess_images(tmp_path / "scan.png", meta)
    from_pil = preprocess_images(Image.open(tmp_path / "scan.png"), meta)
    twin = preprocess_images(tmp_path / "twin.png", meta)
    torch.testing.assert_close(from_path, from_pil)
    assert (from_path - twin).abs().max().item() <= 1 / (255 * 0.25) + 1e-6
    out_of_range = Image.fromarray(np.full((4, 4), -5, np.int32))  # mode "I", negative values
    with pytest.raises(DataError, match="outside the 16-bit range"):
        preprocess_images(out_of_range, meta)


RANGELESS_IMAGES = {
    # A float scan in 0..1 (PIL's convert clips it to black) and 8-bit values in a 32-bit TIFF
    # (read as 16-bit they would come out black too): neither file fixes its white level.
    "float-tiff": lambda: Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)),
    "int32-tiff": lambda: Image.fromarray(np.arange(64, dtype=np.int32).reshape(8, 8) * 4),
}


@pytest.mark.parametrize("kind", sorted(RANGELESS_IMAGES))
@pytest.mark.parametrize("reader", ["open_image", "read_image_header", "preprocess", "folder"])
def test_pixels_without_a_white_level_are_refused_not_guessed(tmp_path, kind, reader):
    image = RANGELESS_IMAGES[kind]()
    for name in ("a", "b"):  # a folder dataset of two classes, one of them holding the file
        (tmp_path / "data" / name).mkdir(parents=True)
        Image.new("L", (8, 8), 128).save(tmp_path / "data" / name / "ok.png")
    path = tmp_path / "data" / "b" / "scan.tif"
    image.save(path)
    meta = DatasetMeta("x", ["a", "b"], 1, (8, 8), (0.5,), (0.25,))
    call = {
        "open_image": lambda: open_image(path, 1),
        "read_image_header": lambda: read_image_header(path),
        "preprocess": lambda: preprocess_images([path, image], meta),
        "folder": lambda: load_dataset(str(tmp_path / "data"), "train", val_fraction=0.0),
    }[reader]
    with pytest.raises(PixelRangeError, match=f"{path}: .* no fixed black and white level"):
        call()
    if kind == "float-tiff":  # in memory too (mode "I" built in memory is read as 16-bit)
        with pytest.raises(PixelRangeError, match="image: .*8- or 16-bit"):
            preprocess_images(image, meta)


def png_header_only(width, height):
    """A PNG whose header claims ``width`` x ``height`` gray pixels, with no pixel data."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "limit, size",
    [(None, (100_000, 100_000)), (1000, (40, 40)), (1000, (40, 26))],
    ids=["over-2x-default", "between-1x-2x", "just-over"],
)
@pytest.mark.parametrize("reader", ["open_image", "read_image_header", "preprocess_images"])
def test_decompression_bomb_is_one_data_error_without_warning(
    tmp_path, monkeypatch, limit, size, reader
):
    if limit is not None:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        Image.new("L", size).save(tmp_path / "bomb.png")
    else:
        (tmp_path / "bomb.png").write_bytes(png_header_only(*size))
    path = tmp_path / "bomb.png"
    meta = DatasetMeta("x", ["a"], 1, (8, 8), (0.5,), (0.25,))
    call = {
        "open_image": lambda: open_image(path, 1),
        "read_image_header": lambda: read_image_header(path),
        "preprocess_images": lambda: preprocess_images(path, meta),
    }[reader]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning would fail the test
        with pytest.raises(DataError) as info:
            call()
    message = str(info.value)
    assert str(path) in message and str(Image.MAX_IMAGE_PIXELS) in message
    assert "MAX_IMAGE_PIXELS" in message and "\n" not in message


def valid_png_bytes():
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "payload",
    [valid_png_bytes()[:-40], valid_png_bytes()[:60], b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30],
    ids=["truncated-data", "truncated-header", "empty", "garbage-after-signature"],
)
def test_corrupt_image_is_one_line_data_error_naming_the_file(tmp_path, payload):
    path = tmp_path / "bad.png"
    path.write_bytes(payload)
    with pytest.raises(DataError) as info:
        open_image(path, 3)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_image_corrupted_after_indexing_fails_loader_with_one_line(
    tmp_path, write_images, num_workers
):
    write_images(tmp_path, ("a", "b"), per_class=3, size=(10, 10))
    dataset = load_dataset(str(tmp_path), "train", image_size=8)
    victim = tmp_path / "b" / "01.png"
    victim.write_bytes(victim.read_bytes()[:-60])  # truncated after the scan
    with pytest.raises(DataError, match="not a readable image"):
        dataset[4]
    loader = make_loader(dataset, 3, train=False, num_workers=num_workers)
    with pytest.raises(DataError) as info:
        list(loader)
    message = str(info.value)
    assert message.startswith(f"{victim}: not a readable image")
    assert "\n" not in message and "Traceback" not in message


def test_chunk_length_larger_than_the_file_allocates_nothing_large(tmp_path):
    # Found by test_data_fuzz: a 1x1 PNG whose IDAT length field says 201 MB. PIL reads the
    # claimed length in one call; reads from our file object are clamped to what it holds.
    png = bytearray(png_header_only(1, 1)[:-12])  # signature + IHDR (RGBA below), no IEND
    png[25] = 6  # colour type RGBA
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    idat = zlib.compress(b"\x00" + bytes(4))
    png += struct.pack(">I", 0x0C00000D) + b"IDAT" + idat + bytes(4)
    path = tmp_path / "liar.png"
    path.write_bytes(bytes(png))
    tracemalloc.start()
    try:
        image = open_image(path, 3)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert image.size == (1, 1) and peak < 5_000_000


def _phone_photo(path, orientation):
    """A 30x20 (WxH) picture with a bright top-left corner, stored as a phone stores a photo
    taken turned: the pixels as the sensor read them, the turn in the EXIF orientation."""
    upright = np.zeros((20, 30, 3), np.uint8)
    upright[:5, :5] = 255  # top-left, as the viewer shows it
    undo = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
            8: Image.Transpose.ROTATE_270}[orientation]  # fmt: skip
    stored = Image.fromarray(upright)
    stored = stored.transpose(undo) if undo is not None else stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif.tobytes(), quality=100)
    return upright


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_photos_are_read_upright_as_their_exif_says(tmp_path, orientation):
    """Phone photos (EXIF orientation 3, 6, 8) were read as stored: sideways or upside down
    for training, predict and explain alike, though every viewer shows them upright."""
    path = tmp_path / f"photo{orientation}.jpg"
    upright = _phone_photo(path, orientation)
    image = np.asarray(open_image(path, 3))
    assert image.shape == upright.shape == (20, 30, 3)
    assert image[:5, :5].mean() > 200 and image[-5:, -5:].mean() < 50
    assert read_image_header(path)[1:] == (30, 20)  # (width, height) as shown
    with Image.open(path) as pil:  # a PIL image the caller opened: the same turn
        meta = DatasetMeta("photos", ["a"], 3, (20, 30), (0.5,) * 3, (0.5,) * 3)
        from_pil = preprocess_images(pil, meta)
    assert torch.equal(from_pil, preprocess_images(path, meta))

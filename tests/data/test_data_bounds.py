"""Resources are bounded before any allocation, and text metadata must be UTF-8."""

import gzip
import io
import os
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from resnet.data import load_dataset, read_idx
from resnet.data import registry as data_registry
from resnet.data.idx import MAX_IDX_BYTES
from resnet.data.npz import MAX_CLASSES
from resnet.errors import DataError


@pytest.fixture(autouse=True)
def isolated_search(tmp_path, monkeypatch):
    monkeypatch.setattr(data_registry, "SYSTEM_DATA_ROOT", tmp_path / "no-system")
    monkeypatch.setattr(data_registry, "CACHE_ROOT", tmp_path / "no-cache")
    monkeypatch.delenv("RESNET_DATA", raising=False)


def peak_bytes(call):
    """(exception raised by ``call``, peak traced allocation in bytes while it ran)."""
    tracemalloc.start()
    try:
        call()
    except Exception as exc:  # returned for the caller to check
        raised = exc
    else:
        raised = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return raised, peak


def idx_header(*dims, code=0x08):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize(
    "name, payload, message",
    [
        ("huge", idx_header(2**31, 2**31, 1) + bytes(64), f"over the {MAX_IDX_BYTES}-byte"),
        ("huge.gz", gzip.compress(idx_header(2**31, 2**31, 1) + bytes(64)), "over the"),
        ("wraps-int64", idx_header(*[2**32 - 1] * 3, 2**16) + bytes(8), "over the"),
        ("bomb.gz", gzip.compress(idx_header(1000, 1000, 1000) + bytes(4096)), "gzip file can"),
        ("raw-lie", idx_header(60000, 28, 28) + bytes(100), "truncated"),
        ("gz-lie", gzip.compress(idx_header(10, 28, 28) + bytes(100)), "truncated"),
    ],
    ids=["huge", "huge.gz", "wraps-int64", "bomb.gz", "raw-lie", "gz-lie"],
)
def test_idx_header_is_checked_against_the_file_before_allocating(tmp_path, name, payload, message):
    path = tmp_path / name
    path.write_bytes(payload)
    raised, peak = peak_bytes(lambda: read_idx(path))
    assert isinstance(raised, DataError) and message in str(raised)
    assert str(path) in str(raised) and "\n" not in str(raised)
    assert peak < 5_000_000


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for key, data in members.items():
            archive.writestr(f"{key}.npy", data)


def npy_bytes(array=None, header=None):
    buffer = io.BytesIO()
    if header is None:
        np.lib.format.write_array(buffer, array, allow_pickle=True)
    else:
        np.lib.format.write_array_header_1_0(buffer, header)
        buffer.write(bytes(64))
    return buffer.getvalue()


GOOD_IMAGES = np.zeros((4, 5, 5), np.uint8)
GOOD_LABELS = np.arange(4)
HUGE_HEADER = {"descr": "|u1", "fortran_order": False, "shape": (10**6, 10**6)}


@pytest.mark.parametrize(
    "members, message",
    [
        ({"train_labels": np.array([0, 1, 2, 10**9])}, "label 1000000000, above the limit"),
        ({"train_labels": np.array([0, 1, 2, 2**63], np.uint64)}, f"limit of {MAX_CLASSES}"),
        ({"train_labels": np.array([0, "x", None, 1], object)}, "object array"),
        ({"train_images": np.zeros((4, 2, 3, 5, 5), np.uint8)}, "expected (N, H, W)"),
        ({"train_images": np.zeros((4, 0, 5), np.uint8)}, "empty image side"),
        ({"train_images": np.zeros((4, 5, 0, 3), np.uint8)}, "empty image side"),
        ({"train_images": HUGE_HEADER}, "claims shape (1000000, 1000000)"),
        ({"class_names": np.array([b"ok", b"\xff\xfe", b"c", b"d"])}, "not valid UTF-8"),
    ],
    ids=["label-1e9", "label-2^63", "object", "5d", "zero-h", "zero-w", "lying-header", "utf8"],
)
def test_npz_is_checked_before_training_allocates(tmp_path, members, message):
    arrays = {"train_images": GOOD_IMAGES, "train_labels": GOOD_LABELS, **members}
    path = tmp_path / "tiny.npz"
    write_zip(
        path,
        {
            key: npy_bytes(header=value) if isinstance(value, dict) else npy_bytes(value)
            for key, value in arrays.items()
        },
    )
    raised, peak = peak_bytes(lambda: load_dataset(str(path)))
    assert isinstance(raised, DataError), raised
    assert message in str(raised) and str(path) in str(raised) and "\n" not in str(raised)
    assert peak < 5_000_000


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps({"train_images": GOOD_IMAGES, "train_labels": GOOD_LABELS}),
        npy_bytes(GOOD_IMAGES),
        b"PK\x05\x06" + bytes(18),  # an empty zip archive
    ],
    ids=["bare-pickle", "bare-npy", "empty-zip"],
)
def test_npz_that_is_not_an_archive_of_arrays_is_refused(tmp_path, payload):
    path = tmp_path / "data.npz"
    path.write_bytes(payload)
    with pytest.raises(DataError) as info:
        load_dataset(str(path))
    assert str(path) in str(info.value) and "train_images" in str(info.value)


def write_cifar10_binary(root):
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    record = bytes([3]) + bytes(3072)
    for name in [*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin"]:
        (folder / name).write_bytes(record * 2)
    return folder


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "test_batch.bin").write_bytes(bytes(3072)), "3073-byte record"),
        (lambda f: (f / "test_batch.bin").write_bytes(bytes(3073 * 2 + 1)), "3073-byte record"),
        (lambda f: _sparse(f / "data_batch_2.bin", 700_000_000), "more than any CIFAR batch"),
        (lambda f: (f / "batches.meta.txt").write_bytes(b"plane\n\xff\xfecar\n"), "UTF-8"),
    ],
    ids=["short-record", "extra-byte", "oversized", "names-not-utf8"],
)
def test_cifar_files_are_checked(tmp_path, damage, message):
    folder = write_cifar10_binary(tmp_path)
    damage(folder)
    raised, peak = peak_bytes(lambda: load_dataset("cifar10", data_dir=tmp_path, download=False))
    assert isinstance(raised, DataError) and message in str(raised), raised
    assert str(folder) in str(raised) and "\n" not in str(raised)
    assert peak < 5_000_000


def _sparse(path, size):
    with open(path, "r+b") as handle:
        handle.truncate(size)  # no data blocks: a huge file that costs no disk


def test_cifar_python_class_names_must_be_utf8(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch))
    names = [b"\xff\xfe"] + [f"c{i}".encode() for i in range(9)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    with pytest.raises(DataError, match="not valid UTF-8") as info:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str(folder / "batches.meta") in str(info.value)


@pytest.mark.parametrize("name", [b"caf\xe9", b"tab\tname"], ids=["latin-1", "control-char"])
def test_class_folder_names_must_be_printable_utf8(tmp_path, name):
    from PIL import Image

    root = tmp_path / "pets"
    (root / "dog").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "dog" / "a.png")
    os.mkdir(os.path.join(os.fsencode(root), name))
    with pytest.raises(DataError, match="not printable UTF-8; rename the folder") as info:
        load_dataset(str(root), image_size=4)
    assert str(root) in str(info.value) and "\n" not in str(info.value)

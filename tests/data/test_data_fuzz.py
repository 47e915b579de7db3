"""Property tests: malformed IDX, .npz and image bytes either load with sane shapes or raise
DataError/ConfigError, never another exception, and checks come before large allocations."""

import gzip
import io
import itertools
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from resnet.data import DatasetMeta, load_dataset, open_image, preprocess_images, write_idx
from resnet.data import registry as data_registry
from resnet.data.idx import IDX_FILES
from resnet.data.npz import MAX_CLASSES
from resnet.errors import ConfigError, DataError

FUZZ = settings(max_examples=50, deadline=None, database=None)
PEAK_LIMIT = 200_000_000  # bytes traced by tracemalloc (numpy registers its buffers there)
_names = (f"f{i}" for i in itertools.count())  # caches key on path: every example a new file


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


@pytest.fixture(autouse=True)
def isolated_search(tmp_path, monkeypatch):
    monkeypatch.setattr(data_registry, "SYSTEM_DATA_ROOT", tmp_path / "no-system")
    monkeypatch.setattr(data_registry, "CACHE_ROOT", tmp_path / "no-cache")
    monkeypatch.delenv("RESNET_DATA", raising=False)


def traced(call):
    """``call()``'s result, or None if it raised DataError/ConfigError; asserts the peak."""
    tracemalloc.start()
    try:
        return call()
    except (DataError, ConfigError) as exc:
        assert "\n" not in str(exc), str(exc)
        return None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < PEAK_LIMIT, f"peak {peak} bytes"


dims = st.lists(st.one_of(st.integers(0, 12), st.integers(0, 2**32 - 1)), min_size=0, max_size=5)


@st.composite
def idx_files(draw):
    """IDX images-file bytes: random code, dims and payload length, maybe gzip or cut short."""
    code = draw(st.sampled_from([0x08, 0x08, 0x09, 0x0B, 0x0D, 0x00, 0xFF]))
    shape = draw(st.one_of(st.just([8, 3, 4]), dims))
    ndim = draw(st.one_of(st.just(len(shape)), st.integers(0, 255)))
    header = bytes([0, 0, code, ndim]) + struct.pack(f">{len(shape)}I", *shape)
    want = min(int(np.prod(shape, dtype=object)), 4096) if shape else 0
    payload = header + bytes(want)  # the data's values do not matter, its length does
    payload = payload[: draw(st.integers(0, len(payload)))] if draw(st.booleans()) else payload
    payload += draw(st.binary(max_size=8))
    return gzip.compress(payload) if draw(st.booleans()) else payload


@FUZZ
@given(payload=st.one_of(idx_files(), st.binary(max_size=200)))
def test_fuzzed_idx_loads_sanely_or_raises_data_error(workdir, payload):
    directory = workdir / next(_names)
    directory.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        images_name, labels_name = IDX_FILES[split]
        write_idx(directory / images_name, rng.integers(0, 256, (8, 3, 4), dtype=np.uint8))
        write_idx(directory / labels_name, rng.integers(0, 10, 8, dtype=np.uint8))
    (directory / IDX_FILES["train"][0]).write_bytes(payload)
    data = traced(lambda: load_dataset("mnist", "train", data_dir=directory, download=False))
    event("loaded" if data is not None else "refused")
    if data is not None:
        assert data.images.dim() == 4 and data.images.shape[:2] == (8, 1)
        assert min(data.images.shape[2:]) >= 1 and data.labels.shape == (8,)


@st.composite
def npz_arrays(draw):
    """Arrays under the MedMNIST keys: random dtypes, ranks (0-5), sizes (some 0), values."""
    dtypes = st.sampled_from(["u1", "u1", "u1", "i8", "u8", "i1", "f4", "?", "U3", "S2"])
    shapes = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4)
    arrays = {}
    for key in ("train_images", "train_labels", "test_images", "test_labels", "class_names"):
        if key.startswith("train") or draw(st.booleans()):
            arrays[key] = draw(hnp.arrays(draw(dtypes), shapes))
    if draw(st.booleans()):  # a plausible core, so that loading also succeeds sometimes
        n = draw(st.integers(1, 4))
        arrays["train_images"] = draw(hnp.arrays("u1", (n, 3, 3)))
        labels = st.one_of(st.integers(0, 3), st.integers(-(2**63), 2**63 - 1))
        arrays["train_labels"] = np.array(draw(st.lists(labels, min_size=n, max_size=n)))
    return arrays


@FUZZ
@given(
    arrays=npz_arrays(),
    cut=st.none() | st.integers(0, 2000),
    split=st.sampled_from(["train", "test"]),
)
def test_fuzzed_npz_loads_sanely_or_raises_data_error(workdir, arrays, cut, split):
    path = workdir / f"{next(_names)}.npz"
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue()[:cut])
    data = traced(lambda: load_dataset(str(path), split))
    event("loaded" if data is not None else "refused")
    if data is not None:
        assert data.images.dim() in (4, 5) and min(data.images.shape[1:]) >= 1
        assert data.labels.shape == (data.images.shape[0],)
        assert data.meta.num_classes <= MAX_CLASSES
        if len(data):
            assert int(data.labels.min()) >= 0 and int(data.labels.max()) < data.meta.num_classes


@st.composite
def image_files(draw):
    """PNG/TIFF/JPEG bytes of a random small image, maybe truncated or with bytes flipped."""
    mode, depth = draw(st.sampled_from([("L", 1), ("RGB", 3), ("RGBA", 4), ("P", 1), ("I;16", 2)]))
    size = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    n = size[0] * size[1] * depth
    image = Image.frombytes(mode, size, draw(st.binary(min_size=n, max_size=n)))
    buffer = io.BytesIO()
    fmt = draw(st.sampled_from(["PNG", "TIFF", "JPEG"] if mode in ("L", "RGB") else ["PNG"]))
    image.save(buffer, format=fmt)
    data = bytearray(buffer.getvalue())
    for _ in range(draw(st.integers(0, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # PIL notes skipped corrupt TIFF tags
@FUZZ
@given(payload=st.one_of(image_files(), st.binary(max_size=300)), channels=st.sampled_from([1, 3]))
def test_fuzzed_image_bytes_decode_sanely_or_raise_data_error(workdir, payload, channels):
    path = workdir / f"{next(_names)}.png"
    path.write_bytes(payload)
    image = traced(lambda: open_image(path, channels))
    event("decoded" if image is not None else "refused")
    if image is not None:
        assert image.mode == ("L" if channels == 1 else "RGB") and min(image.size) >= 1
    meta = DatasetMeta("x", ["a", "b"], channels, (6, 6), (0.5,) * channels, (0.25,) * channels)
    batch = traced(lambda: preprocess_images(path, meta))
    assert (batch is None) == (image is None)
    if batch is not None:
        assert tuple(batch.shape) == (1, channels, 6, 6) and bool(batch.isfinite().all())


def _a_meta_mat(compressed: bool) -> bytes:
    import scipy.io

    synsets = np.zeros((2, 1), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("children", "O")])
    synsets[0, 0] = (1, "n01440764", np.zeros((1, 0)))
    synsets[1, 0] = (1001, "n00001740", np.array([[1]]))
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"synsets": synsets, "x": np.arange(5.0)}, do_compression=compressed)
    return buffer.getvalue()


MAT_FILES = [_a_meta_mat(False), _a_meta_mat(True)]


@settings(max_examples=400, deadline=None, database=None)  # fast: a few kB a file
@given(
    st.sampled_from([0, 1]),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 10_000),
)
def test_damaged_mat_files_read_or_raise_data_error(which, flips, cut):
    """A MAT-file (ImageNet devkit's meta.mat) with bytes changed or cut off: it reads, or
    raises DataError in one line; never another exception, never a large allocation."""
    from resnet.data.matlab import read_mat

    data = bytearray(MAT_FILES[which])
    for position, value in flips:
        data[position % len(data)] = value
    traced(lambda: read_mat(bytes(data[: max(cut, 1)]), "meta.mat"))

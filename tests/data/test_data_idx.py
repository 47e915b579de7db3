"""IDX parsing (synthetic files, every kind of damage) and the MNIST/Fashion-MNIST registry path."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet.data import load_dataset, read_idx, write_idx
from resnet.data import registry as data_registry
from resnet.data.idx import IDX_FILES, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC
from resnet.errors import ConfigError, DataError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def isolated_search(tmp_path, monkeypatch):
    """No system copy, no cache, no $RESNET_DATA: only what a test passes as data_dir."""
    monkeypatch.setattr(data_registry, "SYSTEM_DATA_ROOT", tmp_path / "no-system")
    monkeypatch.setattr(data_registry, "CACHE_ROOT", tmp_path / "no-cache")
    monkeypatch.delenv("RESNET_DATA", raising=False)


def write_idx_dataset(directory: Path, *, gz: bool, seed: int = 0, labels_max: int = 9) -> dict:
    """Four small IDX files (train 40 x 5x4, test 12 x 5x4); returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {}
    suffix = ".gz" if gz else ""
    for split, n in (("train", 40), ("test", 12)):
        images = rng.integers(0, 256, (n, 5, 4), dtype=np.uint8)
        labels = rng.integers(0, labels_max + 1, n, dtype=np.uint8)
        images_name, labels_name = IDX_FILES[split]
        write_idx(directory / f"{images_name}{suffix}", images)
        write_idx(directory / f"{labels_name}{suffix}", labels)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip_is_exact(tmp_path, suffix, dtype):
    array = (np.random.default_rng(1).normal(size=(7, 3, 2)) * 100).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    loaded = read_idx(path)
    assert loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_idx_header_layout_matches_the_mnist_spec(tmp_path):
    write_idx(tmp_path / "x", np.zeros((3, 28, 28), np.uint8))
    data = (tmp_path / "x").read_bytes()
    assert struct.unpack(">IIII", data[:16]) == (IDX_IMAGES_MAGIC, 3, 28, 28)
    assert len(data) == 16 + 3 * 28 * 28


def _valid_idx_bytes() -> bytes:
    return struct.pack(">IIII", IDX_IMAGES_MAGIC, 2, 3, 3) + bytes(range(18))


@pytest.mark.parametrize(
    "name, payload, message",
    [
        ("truncated.gz", gzip.compress(_valid_idx_bytes())[:-12], "gzip"),
        ("garbage.gz", b"\x1f\x8b" + b"\x00" * 40, "gzip"),
        ("magic", b"\x12\x34" + _valid_idx_bytes()[2:], "not an IDX file"),
        ("short-header", _valid_idx_bytes()[:10], "truncated IDX header"),
        ("short-data", _valid_idx_bytes()[:-1], "truncated"),
        ("too-many-items", struct.pack(">IIII", IDX_IMAGES_MAGIC, 9, 3, 3) + bytes(18), "9, 3, 3"),
        ("trailing", _valid_idx_bytes() + b"\x00", "trailing bytes"),
        ("empty", b"", "truncated"),
    ],
)
def test_damaged_idx_file_raises_data_error_naming_the_file(tmp_path, name, payload, message):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_wrong_magic_for_the_role_is_rejected(tmp_path):
    path = tmp_path / "labels-but-images"
    path.write_bytes(_valid_idx_bytes())
    assert read_idx(path).shape == (2, 3, 3)
    with pytest.raises(DataError, match="wrong IDX magic") as info:
        read_idx(path, expect_magic=IDX_LABELS_MAGIC)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [False, True])
def test_synthetic_idx_dataset_loads_exactly(tmp_path, isolated_search, gz):
    arrays = write_idx_dataset(tmp_path, gz=gz)
    test = load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(test.images[:, 0].numpy(), arrays["test"][0])
    np.testing.assert_array_equal(test.labels.numpy(), arrays["test"][1])
    assert test.images.dtype == torch.uint8 and test.labels.dtype == torch.int64
    assert test.meta.image_size == (5, 4) and test.meta.channels == 1
    train_images = arrays["train"][0] / 255.0
    assert test.meta.mean[0] == pytest.approx(train_images.mean(), abs=1e-12)
    assert test.meta.std[0] == pytest.approx(train_images.std(), abs=1e-12)


def test_val_is_a_seeded_disjoint_fraction_of_train(tmp_path, isolated_search):
    arrays = write_idx_dataset(tmp_path, gz=False)
    kwargs = dict(data_dir=tmp_path, download=False, val_fraction=0.25)
    train = load_dataset("mnist", "train", seed=3, **kwargs)
    val = load_dataset("mnist", "val", seed=3, **kwargs)
    assert (len(train), len(val)) == (30, 10)
    rows = {bytes(img) for img in arrays["train"][0]}
    got = [bytes(img) for img in torch.cat([train.images, val.images])[:, 0].numpy()]
    assert sorted(got) == sorted(bytes(img) for img in arrays["train"][0]) and len(rows) == 40
    again = load_dataset("mnist", "val", seed=3, **kwargs)
    other = load_dataset("mnist", "val", seed=4, **kwargs)
    assert torch.equal(again.images, val.images)
    assert not torch.equal(other.images, val.images)
    full = load_dataset("mnist", "train", data_dir=tmp_path, download=False, val_fraction=0.0)
    assert len(full) == 40
    with pytest.raises(ConfigError, match="val_fraction"):
        load_dataset("mnist", "val", data_dir=tmp_path, download=False, val_fraction=0.0)


def test_count_mismatch_and_label_range_are_data_errors(tmp_path, isolated_search):
    write_idx_dataset(tmp_path, gz=False)
    labels_path = tmp_path / IDX_FILES["train"][1]
    write_idx(labels_path, np.zeros(39, np.uint8))
    with pytest.raises(DataError, match="40 images") as info:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert str(labels_path) in str(info.value)
    write_idx(labels_path, np.full(40, 10, np.uint8))
    with pytest.raises(DataError, match="label 10 is out of range") as info:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert str(labels_path) in str(info.value)


def test_search_order_prefers_data_dir_then_environment(tmp_path, isolated_search, monkeypatch):
    explicit, env = tmp_path / "explicit", tmp_path / "env" / "fashion-mnist"
    explicit_arrays = write_idx_dataset(explicit, gz=True, seed=1)
    env_arrays = write_idx_dataset(env, gz=False, seed=2)
    monkeypatch.setenv("RESNET_DATA", str(tmp_path / "env"))  # found via <RESNET_DATA>/<name>
    got = load_dataset("fashion-mnist", "test", data_dir=explicit, download=False)
    np.testing.assert_array_equal(got.images[:, 0].numpy(), explicit_arrays["test"][0])
    got = load_dataset("fashion-mnist", "test", download=False)
    np.testing.assert_array_equal(got.images[:, 0].numpy(), env_arrays["test"][0])


def test_missing_data_error_names_both_remedies(tmp_path, isolated_search):
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", download=False)
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message and "RESNET_DATA" in message
    for name in (*IDX_FILES["train"], *IDX_FILES["test"]):
        assert name in message
    assert str(tmp_path / "no-system") in message and "\n" not in message

    with pytest.raises(DataError) as info:  # an explicit data_dir: only it is named
        load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert f"searched {tmp_path}, {tmp_path / 'fashion-mnist'})" in message
    assert "no-system" not in message and IDX_FILES["train"][0] in message


def test_failed_download_is_reported(tmp_path, isolated_search, monkeypatch):
    def no_network(name, target):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data_registry, "_download", no_network)
    with pytest.raises(DataError, match="download failed .*network is unreachable"):
        load_dataset("mnist", data_dir=tmp_path, download=True)


def test_a_failed_download_leaves_no_empty_folders(tmp_path, isolated_search, monkeypatch):
    """torchvision made ~/.cache/resnet/mnist/MNIST/raw before the network failed, and the
    empty folders stayed; folders that were there before, and files, stay."""

    def half_done(name, target):
        (target / "MNIST" / "raw").mkdir(parents=True)
        raise OSError("network is unreachable")

    monkeypatch.setattr(data_registry, "_download", half_done)
    with pytest.raises(DataError, match="download failed"):
        load_dataset("mnist", download=True)  # into the (isolated) cache
    assert not (tmp_path / "no-cache" / "mnist").exists()
    (tmp_path / "mine" / "notes").mkdir(parents=True)
    with pytest.raises(DataError, match="download failed"):
        load_dataset("mnist", data_dir=tmp_path / "mine", download=True)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes"]


def test_unknown_name_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet-22k")
    with pytest.raises(ConfigError, match="split"):
        load_dataset("mnist", "holdout")


def test_real_fashion_mnist_matches_known_statistics():
    train = load_dataset("fashion-mnist", "train", data_dir=FASHION_DIR, val_fraction=0.0)
    test = load_dataset("fashion-mnist", "test", data_dir=FASHION_DIR)
    assert tuple(train.images.shape) == (60000, 1, 28, 28)
    assert tuple(test.images.shape) == (10000, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.meta.class_names[0] == "T-shirt/top" and train.meta.class_names[9] == "Ankle boot"
    # Published values (e.g. torchvision tutorials): mean 0.2860, std 0.3530.
    assert train.meta.mean[0] == pytest.approx(0.2860, abs=1e-4)
    assert train.meta.std[0] == pytest.approx(0.3530, abs=1e-4)
    assert test.meta == train.meta  # test split carries the train statistics
    pixels = train.images[:2000].double() / 255
    sample_mean = pixels.mean().item()
    assert sample_mean == pytest.approx(0.2860, abs=0.01)  # independent spot check


def test_mnist_and_fashion_mnist_files_are_told_apart(tmp_path, isolated_search):
    """The two datasets' files have the same names and shapes: Fashion-MNIST's four files under
    --dataset mnist trained clothes as digits, and other labels of the official size under
    --dataset fashion-mnist (MNIST's, KMNIST's) trained as clothes, without a word."""
    fashion = tmp_path / "fashion"
    other = tmp_path / "other"
    for split in ("train", "test"):
        images, labels = (read_idx(FASHION_DIR / f"{name}.gz") for name in IDX_FILES[split])
        for folder, written in ((fashion, labels), (other, np.roll(labels, 1))):
            folder.mkdir(exist_ok=True)
            write_idx(folder / IDX_FILES[split][0], images)
            write_idx(folder / IDX_FILES[split][1], written)
    assert len(load_dataset("fashion-mnist", "test", data_dir=fashion)) == 10000
    with pytest.raises(DataError, match="holds Fashion-MNIST's files, not MNIST's"):
        load_dataset("mnist", "test", data_dir=fashion)
    with pytest.raises(DataError, match="labels that are not Fashion-MNIST's"):
        load_dataset("fashion-mnist", "test", data_dir=other)
    assert len(load_dataset("mnist", "test", data_dir=other)) == 10000
    write_idx_dataset(tmp_path / "small", gz=False)  # files of other sizes are not judged
    assert len(load_dataset("fashion-mnist", "test", data_dir=tmp_path / "small")) == 12

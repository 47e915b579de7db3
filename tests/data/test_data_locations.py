"""Where data comes from: an explicit data_dir is used or refused, and one val_fraction default."""

import inspect

import numpy as np
import pytest

import resnet.data
from resnet.data import DEFAULT_VAL_FRACTION, load_dataset, load_image_folder, write_idx
from resnet.data import registry as data_registry
from resnet.data.idx import IDX_FILES
from resnet.errors import ConfigError, DataError


def write_mnist(directory, n_train=8, n_test=4):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        images_name, labels_name = IDX_FILES[split]
        write_idx(directory / images_name, rng.integers(0, 256, (n, 3, 3), dtype=np.uint8))
        write_idx(directory / labels_name, rng.integers(0, 10, n, dtype=np.uint8))


EXPECTED_FILES = {
    "mnist": "t10k-images-idx3-ubyte.gz",
    "cifar10": "cifar-10-batches-py/",
    "cifar100": "cifar-100-python/",
}


@pytest.fixture
def default_copy(tmp_path, monkeypatch):
    """A complete MNIST in the default system location, and downloads recorded, not run."""
    system = tmp_path / "system"
    write_mnist(system / "mnist")
    monkeypatch.setattr(data_registry, "SYSTEM_DATA_ROOT", system)
    monkeypatch.setattr(data_registry, "CACHE_ROOT", tmp_path / "cache")
    monkeypatch.delenv("RESNET_DATA", raising=False)
    downloads = []
    monkeypatch.setattr(data_registry, "_download", lambda name, target: downloads.append(target))
    return downloads


@pytest.mark.parametrize(
    "name, kind, problem",
    [
        ("mnist", "missing", "does not exist"),
        ("mnist", "file", "is a file"),
        ("mnist", "empty", "not found in data_dir"),
        ("cifar10", "missing", "does not exist"),
        ("cifar100", "empty", "not found in data_dir"),
    ],
)
def test_explicit_data_dir_is_used_or_refused_never_replaced(
    tmp_path, default_copy, name, kind, problem
):
    data_dir = tmp_path / "typo"
    if kind == "file":
        data_dir.write_text("not a directory")
    elif kind == "empty":
        data_dir.mkdir()
    with pytest.raises(DataError, match=problem) as info:
        load_dataset(name, "test", data_dir=data_dir, download=True)
    message = str(info.value)
    assert str(data_dir) in message and "\n" not in message
    assert EXPECTED_FILES[name] in message
    assert str(tmp_path / "system") not in message  # the default copy is never mentioned
    # A missing path is never created or downloaded into; an existing one is the only target.
    assert default_copy == ([data_dir] if kind == "empty" else [])
    assert data_dir.exists() == (kind != "missing")


@pytest.mark.parametrize(
    "name, subdir, names, removed",
    [
        ("mnist", "", [n for pair in IDX_FILES.values() for n in pair], "t10k-labels-idx1-ubyte"),
        ("fashion-mnist", "FashionMNIST/raw", [n + ".gz" for p in IDX_FILES.values() for n in p],
         "train-images-idx3-ubyte.gz"),
        ("cifar10", "cifar-10-batches-py", [*(f"data_batch_{i}" for i in range(1, 6)),
         "test_batch"], "data_batch_3"),
        ("cifar100", "cifar-100-binary", ["train.bin", "test.bin"], "test.bin"),
    ],
)  # fmt: skip
def test_an_incomplete_copy_is_named_with_its_missing_files(
    tmp_path, default_copy, name, subdir, names, removed
):
    """A copy with a file missing is not 'not found': the message names the folder and file."""
    folder = tmp_path / "data" / subdir
    folder.mkdir(parents=True)
    for file in names:
        if file != removed:
            (folder / file).write_bytes(b"")  # never read: the layout check comes first
    with pytest.raises(DataError) as info:
        load_dataset(name, "test", data_dir=tmp_path / "data", download=False)
    message = str(info.value)
    assert f"{name} in {folder} is incomplete" in message
    shown = removed if name.startswith("cifar") else removed.removesuffix(".gz") + ".gz"
    assert f"({shown} missing)" in message
    assert "download is disabled" in message and "\n" not in message


def test_only_data_dir_none_searches_the_default_places(tmp_path, default_copy):
    assert len(load_dataset("mnist", "test", download=False)) == 4
    assert data_registry.dataset_search_dirs("mnist", tmp_path) == [tmp_path, tmp_path / "mnist"]
    own = tmp_path / "own"
    write_mnist(own / "mnist", n_test=6)  # found as data_dir/<name>
    assert len(load_dataset("mnist", "test", data_dir=own, download=False)) == 6


def test_data_layer_has_one_val_fraction_default(tmp_path):
    assert DEFAULT_VAL_FRACTION == 0.0 and resnet.data.DEFAULT_VAL_FRACTION is DEFAULT_VAL_FRACTION
    for function in (load_dataset, load_image_folder):
        default = inspect.signature(function).parameters["val_fraction"].default
        assert default == DEFAULT_VAL_FRACTION, function.__name__
    path = tmp_path / "small.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path,
        train_images=rng.integers(0, 256, (20, 4, 4), dtype=np.uint8),
        train_labels=rng.integers(0, 3, 20),
    )
    assert len(load_dataset(path, "train")) == 20  # the whole train split by default
    with pytest.raises(ConfigError, match="val_fraction=0"):
        load_dataset(path, "val")
    assert len(load_dataset(path, "val", val_fraction=0.1)) == 2

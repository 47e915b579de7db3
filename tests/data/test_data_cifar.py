"""CIFAR-10/100 in both official formats, and the restricted unpickler's refusal of code."""

import builtins
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet.data import load_dataset
from resnet.data import registry as data_registry
from resnet.data.cifar import safe_unpickle
from resnet.errors import DataError


@pytest.fixture(autouse=True)
def isolated_search(tmp_path, monkeypatch):
    monkeypatch.setattr(data_registry, "SYSTEM_DATA_ROOT", tmp_path / "no-system")
    monkeypatch.setattr(data_registry, "CACHE_ROOT", tmp_path / "no-cache")
    monkeypatch.delenv("RESNET_DATA", raising=False)


def _random_split(rng, n, num_classes):
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, num_classes, n)


class _Python2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official CIFAR files: every string as a
    byte string (BINSTRING), numpy's constructor under its numpy 1.x name numpy.core.multiarray."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_byte_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_byte_string
    dispatch[str] = save_byte_string

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", "") == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def _dump(path: Path, obj, protocol: int | str) -> None:
    """Pickle ``obj`` to ``path``; protocol "py2" imitates the official Python 2 files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if protocol == "py2":
        buffer = io.BytesIO()
        _Python2Pickler(buffer, protocol=2).dump(obj)
        path.write_bytes(buffer.getvalue())
    else:
        path.write_bytes(pickle.dumps(obj, protocol=protocol))


def write_cifar10_python(root: Path, protocol: int | str = "py2") -> dict:
    """Official layout with bytes keys, as in the Python 2 pickles of the real download."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    train_parts = []
    for i in range(1, 6):
        data, labels = _random_split(rng, 4, 10)
        _dump(folder / f"data_batch_{i}", {b"data": data, b"labels": labels.tolist()}, protocol)
        train_parts.append((data, labels))
    test = _random_split(rng, 6, 10)
    _dump(folder / "test_batch", {b"data": test[0], b"labels": test[1].tolist()}, protocol)
    names = [f"class{i}".encode() for i in range(10)]
    _dump(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072}, protocol)
    train = tuple(np.concatenate(parts) for parts in zip(*train_parts))
    return {"train": train, "test": test}


def write_cifar100_python(root: Path) -> dict:
    rng = np.random.default_rng(1)
    folder = root / "cifar-100-python"
    splits = {}
    for name, n in (("train", 9), ("test", 5)):
        data, fine = _random_split(rng, n, 100)
        batch = {"data": data, "fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist()}
        _dump(folder / name, batch, 5)  # protocol 5 pickles arrays via numpy's _frombuffer
        splits[name] = (data, fine)
    return splits


def write_cifar_binary(root: Path, variant: str) -> dict:
    rng = np.random.default_rng(2)
    if variant == "cifar10":
        folder, files = root / "cifar-10-batches-bin", {"test": "test_batch.bin"}
        files.update({f"train{i}": f"data_batch_{i}.bin" for i in range(1, 6)})
        classes, label_bytes = 10, 1
    else:
        folder, files = root / "cifar-100-binary", {"train1": "train.bin", "test": "test.bin"}
        classes, label_bytes = 100, 2
    folder.mkdir(parents=True)
    written = {}
    for key, name in files.items():
        data, labels = _random_split(rng, 3, classes)
        columns = [labels[:, None]] if label_bytes == 1 else [labels[:, None] // 5, labels[:, None]]
        (folder / name).write_bytes(
            np.concatenate([*columns, data], axis=1).astype(np.uint8).tobytes()
        )
        written[key] = (data, labels)
    train_keys = sorted(k for k in written if k.startswith("train"))
    train = tuple(np.concatenate(parts) for parts in zip(*(written[k] for k in train_keys)))
    return {"train": train, "test": written["test"]}


def _assert_split_equal(dataset, expected) -> None:
    data, labels = expected
    assert tuple(dataset.images.shape) == (len(labels), 3, 32, 32)
    np.testing.assert_array_equal(dataset.images.reshape(len(labels), -1).numpy(), data)
    np.testing.assert_array_equal(dataset.labels.numpy(), labels)


@pytest.mark.parametrize("protocol", ["py2", 4, 5])
def test_cifar10_python_batches_round_trip(tmp_path, protocol):
    expected = write_cifar10_python(tmp_path, protocol)
    kwargs = dict(data_dir=tmp_path, download=False, val_fraction=0.0)
    train = load_dataset("cifar10", "train", **kwargs)
    test = load_dataset("cifar10", "test", **kwargs)
    _assert_split_equal(train, expected["train"])
    _assert_split_equal(test, expected["test"])
    assert test.meta.class_names == [f"class{i}" for i in range(10)]  # from batches.meta
    pixels = expected["train"][0].reshape(-1, 3, 1024) / 255.0
    np.testing.assert_allclose(test.meta.mean, pixels.mean(axis=(0, 2)), atol=1e-12)
    np.testing.assert_allclose(test.meta.std, pixels.std(axis=(0, 2)), atol=1e-12)


def test_cifar100_python_round_trip_uses_fine_labels(tmp_path):
    expected = write_cifar100_python(tmp_path)
    test = load_dataset("cifar100", "test", data_dir=tmp_path, download=False)
    _assert_split_equal(test, expected["test"])
    assert test.meta.num_classes == 100 and test.meta.class_names[0] == "apple"


@pytest.mark.parametrize("variant", ["cifar10", "cifar100"])
def test_cifar_binary_round_trip(tmp_path, variant):
    expected = write_cifar_binary(tmp_path, variant)
    kwargs = dict(data_dir=tmp_path, download=False, val_fraction=0.0)
    _assert_split_equal(load_dataset(variant, "train", **kwargs), expected["train"])
    _assert_split_equal(load_dataset(variant, "test", **kwargs), expected["test"])


def test_cifar_binary_size_must_be_whole_records(tmp_path):
    write_cifar_binary(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="3073-byte record") as info:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str(path) in str(info.value)


class _RunsCode:
    """A pickle payload that executes ``code`` when unpickled by the standard unpickler."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (builtins.exec, (self.code,))


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("kind", ["exec", "os.system"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, kind):
    def payload(marker: Path):
        if kind == "exec":
            return _RunsCode(f"open({str(marker)!r}, 'w').close()")
        return _RunsShell(f"touch '{marker}'")

    # Control: the payload really does run under plain pickle, so the test below can fail.
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps({b"data": payload(control)}))
    assert control.exists()

    expected = write_cifar10_python(tmp_path)
    marker = tmp_path / "marker"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    _dump(batch, {b"data": payload(marker), b"labels": [0]}, 4)
    with pytest.raises(DataError, match="refused to load global") as info:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str(batch) in str(info.value)
    assert not marker.exists()
    assert expected  # the other files were valid: the refusal is about this one pickle


@pytest.mark.parametrize(
    "batch, message",
    [
        ([1, 2, 3], "expected a dict"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8 array"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"\(N, 3072\)"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, "1"]}, "list of ints"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": np.array([0, 1])}, "list of ints"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "label 10 out of range"),
    ],
)
def test_cifar_batch_content_is_validated(tmp_path, batch, message):
    write_cifar10_python(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    _dump(path, batch, 4)
    with pytest.raises(DataError, match=message) as info:
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert str(path) in str(info.value)


def test_truncated_pickle_is_a_data_error(tmp_path):
    path = tmp_path / "batch"
    _dump(path, {b"data": np.zeros((2, 3072), np.uint8)}, 4)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError, match="corrupt") as info:
        safe_unpickle(path)
    assert str(path) in str(info.value)


def test_safe_unpickle_rebuilds_numpy_arrays(tmp_path):
    path = tmp_path / "arrays"
    value = {"a": np.arange(6, dtype=np.int16).reshape(2, 3), "b": [1, 2.5, "x", b"y", None]}
    _dump(path, value, 4)
    loaded = safe_unpickle(path)
    np.testing.assert_array_equal(loaded["a"], value["a"])
    assert loaded["b"] == value["b"]
    _dump(path, torch.zeros(2), 4)  # a torch tensor needs torch globals: refused
    with pytest.raises(DataError, match="refused"):
        safe_unpickle(path)

"""MedMNIST-style .npz files: 2D gray, 2D RGB, 3D volumes, and malformed files."""

import numpy as np
import pytest
import torch

from resnet.data import load_dataset
from resnet.errors import DataError


def write_npz(path, sample_shape, *, label_shape=(), splits=("train", "val", "test"), **extra):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in zip(("train", "val", "test"), (20, 6, 8)):
        if split not in splits:
            continue
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, *sample_shape), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 4, (n, *label_shape)).astype(np.uint8)
    arrays.update(extra)
    np.savez(path, **arrays)
    return arrays


@pytest.mark.parametrize(
    "sample_shape, to_channels_first, image_size",
    [
        ((9, 7), lambda a: a[:, None], (9, 7)),
        ((9, 7, 3), lambda a: a.transpose(0, 3, 1, 2), (9, 7)),
        ((5, 6, 7), lambda a: a[:, None], (5, 6, 7)),
        # PyTorch's channels-first images were read as 3-slice volumes (a 2D net refused them
        # with "pick a 3D model").
        ((3, 9, 7), lambda a: a, (9, 7)),
        ((1, 9, 7), lambda a: a, (9, 7)),
    ],
    ids=["gray", "rgb", "volume", "rgb-channels-first", "gray-channels-first"],
)
@pytest.mark.parametrize("label_shape", [(), (1,)])
def test_npz_splits_round_trip(tmp_path, sample_shape, to_channels_first, image_size, label_shape):
    path = tmp_path / "organmnist.npz"
    arrays = write_npz(path, sample_shape, label_shape=label_shape)
    for split in ("train", "val", "test"):
        dataset = load_dataset(str(path), split)
        expected = to_channels_first(arrays[f"{split}_images"])
        assert dataset.images.dtype == torch.uint8
        np.testing.assert_array_equal(dataset.images.numpy(), expected)
        np.testing.assert_array_equal(dataset.labels.numpy(), arrays[f"{split}_labels"].reshape(-1))
        assert dataset.labels.dtype == torch.int64
    meta = dataset.meta
    assert meta.name == "organmnist" and meta.image_size == image_size
    assert meta.channels == expected.shape[1] and meta.class_names == ["0", "1", "2", "3"]
    train = to_channels_first(arrays["train_images"]) / 255.0
    axes = tuple(i for i in range(train.ndim) if i != 1)
    np.testing.assert_allclose(meta.mean, train.mean(axis=axes), atol=1e-12)
    np.testing.assert_allclose(meta.std, train.std(axis=axes), atol=1e-12)


def test_npz_class_names_and_missing_val(tmp_path):
    path = tmp_path / "x.npz"
    names = np.array(["adipose", "background", "debris", "lymphocytes"])
    write_npz(path, (4, 4), splits=("train", "test"), class_names=names)
    train = load_dataset(path, "train", val_fraction=0.25, seed=1)
    val = load_dataset(path, "val", val_fraction=0.25, seed=1)
    assert (len(train), len(val)) == (15, 5)
    assert train.meta.class_names == names.tolist()


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            {"test_images": np.zeros((2, 4, 4), np.uint8), "test_labels": np.zeros(2, int)},
            "train_images",
        ),
        ({"train_images": np.zeros((2, 4, 4), np.uint8)}, "not its partner"),
        ({"train_images": np.zeros((2, 4, 4), np.uint8), "train_labels": np.zeros(3, int)}, "same"),
        ({"train_images": np.zeros((2, 4, 4)), "train_labels": np.zeros(2, int)}, "uint8"),
        ({"train_images": np.zeros((2, 4), np.uint8), "train_labels": np.zeros(2, int)}, "shape"),
        (
            {"train_images": np.zeros((2, 4, 4), np.uint8), "train_labels": np.zeros((2, 3), int)},
            "multi-label",
        ),
        (
            {
                "train_images": np.zeros((2, 4, 4), np.uint8),
                "train_labels": np.zeros(2, int),
                "test_images": np.zeros((2, 5, 5), np.uint8),
                "test_labels": np.zeros(2, int),
            },
            "all splits must match",
        ),
    ],
)
def test_malformed_npz_is_a_data_error_naming_file_and_keys(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(str(path))
    assert str(path) in str(info.value)


def test_npz_that_is_not_a_zip_is_a_data_error(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(DataError, match="train_images") as info:
        load_dataset(str(path))
    assert str(path) in str(info.value)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.npz"))


@pytest.mark.parametrize("sample_shape", [(9, 7, 4), (4, 9, 7)])
def test_four_channel_images_are_refused_with_the_fix(tmp_path, sample_shape):
    """RGBA arrays were read as volumes of depth 9 (or 4) and failed later, or trained as such."""
    write_npz(tmp_path / "rgba.npz", sample_shape)
    with pytest.raises(DataError, match=r"4 channels \(RGBA\?\).*keep the colour channels"):
        load_dataset(str(tmp_path / "rgba.npz"), "train")

"""``image_size`` on arrays (Fashion-MNIST, CIFAR, .npz): every image resized as torchvision's
``Resize`` resizes the PIL images its datasets yield, the scored data resized to the
checkpoint's size the same way, and every size that cannot work refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from resnet.data import load_dataset
from resnet.data import preprocess as preprocess_module
from resnet.data.align import as_trained
from resnet.data.meta import ArrayDataset, DatasetMeta
from resnet.data.preprocess import resize_arrays
from resnet.errors import ConfigError, DataError


def _torchvision(images: np.ndarray, size) -> np.ndarray:
    """Each (C, H, W) image through torchvision as a PIL image (RGB whole, other channel
    counts one grey plane at a time): the shorter side resized to cover ``size`` (H, W), then
    the central crop."""

    def resized(pil: Image.Image) -> np.ndarray:
        return np.asarray(TF.center_crop(TF.resize(pil, max(size)), list(size)))

    if images.shape[1] == 3:
        return np.stack([resized(Image.fromarray(i.transpose(1, 2, 0))).transpose(2, 0, 1)
                         for i in images])  # fmt: skip
    return np.stack([np.stack([resized(Image.fromarray(p)) for p in i]) for i in images])


@pytest.mark.parametrize(
    "shape, size",
    [((5, 1, 28, 28), (48, 48)), ((4, 3, 32, 32), (20, 20)), ((3, 2, 16, 16), (12, 20))],
    ids=["gray-up", "rgb-down", "two-channels-to-a-rectangle"],
)
def test_resize_arrays_equals_torchvision_pixel_for_pixel(shape, size):
    images = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    resized = resize_arrays(torch.from_numpy(images), size if size[0] != size[1] else size[0])
    assert resized.dtype == torch.uint8 and tuple(resized.shape) == (*shape[:2], *size)
    assert np.array_equal(resized.numpy(), _torchvision(images, size))


@pytest.fixture
def gray_npz(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "gray.npz"
    np.savez(
        path,
        train_images=rng.integers(0, 256, (40, 14, 14), dtype=np.uint8),
        train_labels=np.arange(40) % 2,
        test_images=rng.integers(0, 256, (10, 14, 14), dtype=np.uint8),
        test_labels=np.arange(10) % 2,
    )
    return path


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_load_dataset_resizes_arrays_and_keeps_their_statistics(gray_npz, split):
    own = load_dataset(str(gray_npz), split, val_fraction=0.25)
    resized = load_dataset(str(gray_npz), split, val_fraction=0.25, image_size=24)
    assert resized.meta.image_size == (24, 24) and tuple(resized.images.shape[1:]) == (1, 24, 24)
    assert np.array_equal(resized.images.numpy(), _torchvision(own.images.numpy(), (24, 24)))
    assert torch.equal(resized.labels, own.labels)
    # Normalised as the source is (torchvision users normalise CIFAR with its own statistics
    # at any size), so every split of one run shares them whatever it is resized to.
    assert (resized.meta.mean, resized.meta.std) == (own.meta.mean, own.meta.std)
    same = load_dataset(str(gray_npz), split, val_fraction=0.25, image_size=14)
    assert torch.equal(same.images, own.images)


def test_sizes_that_cannot_work_are_refused_in_one_line(gray_npz, tmp_path, monkeypatch):
    for bad in (0, 2.5, 9000, True):
        with pytest.raises(ConfigError, match=r"image_size must be a whole number in 1\.\.8192"):
            load_dataset(str(gray_npz), "test", image_size=bad)
    volumes = tmp_path / "volumes.npz"
    np.savez(
        volumes,
        train_images=np.zeros((4, 6, 8, 8), np.uint8),
        train_labels=np.arange(4) % 2,
        test_images=np.zeros((2, 6, 8, 8), np.uint8),
        test_labels=np.arange(2) % 2,
    )
    with pytest.raises(DataError, match="leave image_size unset for volumes"):
        load_dataset(str(volumes), "test", image_size=16)
    monkeypatch.setattr(preprocess_module, "_free_memory", lambda: 1000)
    with pytest.raises(DataError, match=r"10 images at 24x24 need .* GiB, more than the .* free"):
        load_dataset(str(gray_npz), "test", image_size=24)


def test_scored_arrays_are_resized_to_the_checkpoints_size_as_training_resized_them(gray_npz):
    trained = load_dataset(str(gray_npz), "train", image_size=20).meta
    scored = as_trained(load_dataset(str(gray_npz), "test"), trained, "gray.npz")
    assert scored.meta == trained
    assert torch.equal(scored.images, load_dataset(str(gray_npz), "test", image_size=20).images)
    # Volumes are not resized: scoring 6x8x8 volumes with a 4x8x8 checkpoint is refused.
    meta = DatasetMeta(name="v", class_names=["a", "b"], channels=1, image_size=(6, 8, 8),
                       mean=(0.5,), std=(0.2,))  # fmt: skip
    data = ArrayDataset(torch.zeros(2, 1, 6, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]), meta)
    other = DatasetMeta(name="v", class_names=["a", "b"], channels=1, image_size=(4, 8, 8),
                        mean=(0.5,), std=(0.2,))  # fmt: skip
    with pytest.raises(DataError, match="holds 6x8x8 volumes but the checkpoint was trained on"):
        as_trained(data, other, "scans.npz")

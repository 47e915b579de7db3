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
    with pytest.raises(ConfigError, match=r"or 3 of them for these 3D arrays\), got \(4, 4\)"):
        resize_arrays(torch.zeros(1, 1, 2, 2, 2, dtype=torch.uint8), (4, 4))
    with pytest.raises(DataError, match="not 4x4 float32 arrays"):
        resize_arrays(torch.zeros(1, 1, 4, 4), 8)
    monkeypatch.setattr(preprocess_module, "_free_memory", lambda: 1000)
    with pytest.raises(DataError, match=r"10 images at 24x24 need .* GiB, more than the .* free"):
        load_dataset(str(gray_npz), "test", image_size=24)


def test_scored_arrays_are_resized_to_the_checkpoints_size_as_training_resized_them(gray_npz):
    trained = load_dataset(str(gray_npz), "train", image_size=20).meta
    scored = as_trained(load_dataset(str(gray_npz), "test"), trained, "gray.npz")
    assert scored.meta == trained
    assert torch.equal(scored.images, load_dataset(str(gray_npz), "test", image_size=20).images)
    # Volumes too: 6x8x8 scans scored by a 4x8x8 checkpoint are resized to 4x8x8.
    meta = DatasetMeta(name="v", class_names=["a", "b"], channels=1, image_size=(6, 8, 8),
                       mean=(0.5,), std=(0.2,))  # fmt: skip
    volumes = torch.arange(2 * 6 * 8 * 8).reshape(2, 1, 6, 8, 8).remainder(251).to(torch.uint8)
    data = ArrayDataset(volumes, torch.tensor([0, 1]), meta)
    other = DatasetMeta(name="v", class_names=["a", "b"], channels=1, image_size=(4, 8, 8),
                        mean=(0.5,), std=(0.2,))  # fmt: skip
    scored = as_trained(data, other, "scans.npz")
    assert scored.images.shape == (2, 1, 4, 8, 8)
    assert torch.equal(scored.images, resize_arrays(volumes, (4, 8, 8)))
    flat = DatasetMeta(name="v", class_names=["a", "b"], channels=1, image_size=(8, 8),
                       mean=(0.5,), std=(0.2,))  # fmt: skip
    with pytest.raises(DataError, match="holds 6x8x8 arrays but the checkpoint was trained on 8x8"):
        as_trained(data, flat, "scans.npz")


@pytest.mark.parametrize("sides", [(12, 12, 12), (5, 9, 7), 20])
def test_volumes_resize_as_monais_trilinear_resize(tmp_path, sides):
    """A (D, H, W) volume resized as MONAI's Resize(spatial_size, mode="trilinear") resizes a
    scan (its float output rounded to our uint8), up and down, to a cube or a box; load_dataset's
    image_size resizes a volume .npz so."""
    from monai.transforms import Resize

    volumes = torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, (2, 1, 8, 10, 6), np.uint8)
    )
    ours = resize_arrays(volumes, sides)
    size = (sides,) * 3 if isinstance(sides, int) else sides
    monai = Resize(spatial_size=size, mode="trilinear")
    for volume, resized in zip(volumes, ours):
        expected = torch.as_tensor(monai(volume.float())).round().clamp(0, 255)
        assert resized.shape == expected.shape
        assert (resized.float() - expected).abs().max() <= 1  # a half rounded either way
        assert (resized.float() == expected).float().mean() > 0.99
    path = tmp_path / "scans.npz"
    np.savez(path, train_images=volumes[:, 0].numpy(), train_labels=np.array([0, 1]),
             test_images=volumes[:, 0].numpy(), test_labels=np.array([0, 1]))  # fmt: skip
    data = load_dataset(str(path), "train", image_size=20)
    assert data.images.shape == (2, 1, 20, 20, 20) and tuple(data.meta.image_size) == (20,) * 3
    assert torch.equal(data.images, resize_arrays(volumes, 20))

"""Tiny synthetic data for the experiment tests: 8x8 grayscale images of 4 classes, each class
a bright horizontal band at its own height, so that even a few SGD steps learn something."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resnet.data import ArrayDataset, DatasetMeta


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = (rng.random((n, 8, 8)) * 60).astype(np.uint8)
    for c in range(4):
        images[labels == c, 2 * c : 2 * c + 2, :] += 150
    return images, labels.astype(np.int64)


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A MedMNIST-style .npz: 64 train and 32 test images, 8x8, 4 classes."""
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    (train_x, train_y), (test_x, test_y) = _images(64, 0), _images(32, 1)
    np.savez(
        path,
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        class_names=np.array(["a", "b", "c", "d"]),
    )
    return str(path)


@pytest.fixture(scope="session")
def tiny_dataset() -> ArrayDataset:
    """48 in-memory 8x8 images as an ArrayDataset."""
    images, labels = _images(48, 2)
    meta = DatasetMeta("tiny", ["a", "b", "c", "d"], 1, (8, 8), (0.35,), (0.3,))
    return ArrayDataset(torch.from_numpy(images)[:, None], torch.from_numpy(labels), meta)

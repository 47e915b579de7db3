"""Fixtures shared across test folders."""

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture
def one_thread():
    """Run a test on one thread: two OpenMP threads spin badly on a CPU shared with other tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_images(directory, classes=("cat", "dog"), per_class=6, size=(20, 14), seed=0):
    """Noise PNGs in class folders (RGB; heights size[1] + i, so resizing matters); returns the
    written (path, label) pairs."""
    rng = np.random.default_rng(seed)
    paths = []
    for label, name in enumerate(classes):
        (directory / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1] + i, size[0], 3), dtype=np.uint8)
            pixels[..., label] //= 4  # make classes differ in colour
            path = directory / name / f"{i:02d}.png"
            Image.fromarray(pixels).save(path)
            paths.append((path, label))
    return paths


@pytest.fixture
def write_images():
    """An image folder writer: ``write_images(root, classes, per_class, size, seed)``."""
    return _write_images

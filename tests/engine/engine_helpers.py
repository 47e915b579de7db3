"""Tiny synthetic datasets in the MedMNIST ``.npz`` layout, learnable in a few steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_npz(
    path: Path,
    *,
    num_classes: int = 4,
    size: int = 16,
    train: int = 256,
    test: int = 64,
    seed: int = 0,
) -> Path:
    """Class k lights up the k-th of ``num_classes`` horizontal bands of a noisy image."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        images = rng.integers(0, 90, size=(n, size, size)).astype(np.int64)
        band = size // num_classes
        for i, label in enumerate(labels):
            images[i, label * band : (label + 1) * band, :] += 150
        return images.clip(0, 255).astype(np.uint8), labels.astype(np.int64)

    train_images, train_labels = split(train)
    test_images, test_labels = split(test)
    np.savez(
        path,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        class_names=np.array([f"band{k}" for k in range(num_classes)]),
    )
    return path


def tiny_config(npz: Path, runs_dir: Path, **overrides) -> dict:
    """A config that trains resnet20 on ``npz`` in about a second."""
    config = {
        "model": "resnet20",
        # GroupNorm: 16 steps are too few for BatchNorm running statistics to settle.
        "model_kwargs": {"norm_layer": "group"},
        "dataset": str(npz),
        "epochs": 3,
        "batch_size": 32,
        "lr": 0.05,
        "pad": 1,  # the bands are 4 pixels high: a larger shift would blur the classes
        "schedule": "cosine",
        "runs_dir": str(runs_dir),
        "name": "tiny",
        "progress": False,
        "log_tensorboard": False,
        "device": "cpu",
        "num_threads": 1,
    }
    config.update(overrides)
    return config

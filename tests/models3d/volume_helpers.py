"""Synthetic volumes for the 3D tests: noisy balls and cubes that only their shape tells apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def spheres_and_cubes(n: int, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, size, size, size) noisy volumes: label 0 a ball, label 1 a cube of similar mass.

    Centres and sizes vary, so neither position nor total intensity gives the class away.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    axis = torch.arange(size, dtype=torch.float32)
    coords = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"))  # (3, D, H, W)
    centre = torch.rand(n, 3, generator=g) * (size / 4) + (size / 2 - size / 8)
    radius = (torch.rand(n, generator=g) * (size / 6) + size / 5)[:, None, None, None]
    offset = coords[None] - centre[:, :, None, None, None]  # (n, 3, D, H, W)
    ball = offset.pow(2).sum(1).sqrt() <= radius
    cube = offset.abs().amax(1) <= radius * 0.8
    shape = torch.where(labels[:, None, None, None] == 1, cube, ball).float()
    volumes = shape * 0.6 + 0.2 + 0.15 * torch.randn(n, size, size, size, generator=g)
    return (volumes.clamp(0, 1) * 255).round().to(torch.uint8), labels


def write_shapes_npz(path: Path, n_train: int = 1024, n_test: int = 256) -> Path:
    """A MedMNIST-3D-layout ``.npz``: ``{train,val,test}_{images,labels}``, (N, D, H, W) uint8."""
    splits = {"train": (n_train, 1), "val": (n_test // 2, 3), "test": (n_test, 2)}
    arrays = {}
    for split, (n, seed) in splits.items():
        volumes, labels = spheres_and_cubes(n, seed=seed)
        arrays[f"{split}_images"] = volumes.numpy()
        arrays[f"{split}_labels"] = labels.numpy()[:, None]  # MedMNIST stores (N, 1)
    np.savez(path, class_names=np.array(["ball", "cube"]), **arrays)
    return path

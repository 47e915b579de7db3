"""Data read as a checkpoint was trained: one alignment for every command that scores one.

``evaluate``, int8 calibration and the experiments score a checkpoint on a dataset that may
not be the one it was trained on. The dataset's own statistics, size and class order then
differ from the checkpoint's, and using them gives a number that means nothing.
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from typing import Any

import torch

from resnet.data.folder import ImageFolderDataset
from resnet.data.imagenet import imagenet_class_ids
from resnet.data.meta import ArrayDataset, DatasetMeta
from resnet.data.preprocess import resize_arrays
from resnet.errors import DataError

__all__ = ["as_trained"]


def as_trained(data: Any, meta: DatasetMeta, dataset: str) -> Any:
    """``data`` (from ``load_dataset``) as a checkpoint of ``meta`` saw its training data:
    labels as its class indices (matched by name), images read (folders) or resized (arrays, as
    ``image_size`` resizes them for training) at its size and normalised with its statistics,
    whatever the scored data's own (a folder's median size and mean/std are its own, not the
    training folder's)."""
    index = _class_index(list(data.meta.class_names), meta, dataset)
    if isinstance(data, ImageFolderDataset):  # images are decoded to the checkpoint's channels
        samples = [(path, int(index[label])) for path, label in data.samples]
        return replace(data, samples=samples, meta=meta)
    if data.meta.channels != meta.channels:
        raise DataError(
            f"{dataset} has {data.meta.channels}-channel images but the checkpoint takes "
            f"{meta.channels}; score it on a matching dataset"
        )
    images = data.images
    if tuple(data.meta.image_size) != tuple(meta.image_size):
        if len(meta.image_size) != images.dim() - 2:
            have, want = ("x".join(map(str, m.image_size)) for m in (data.meta, meta))
            raise DataError(
                f"{dataset} holds {have} arrays but the checkpoint was trained on {want}; "
                "score it on arrays of as many dimensions"
            )
        images = resize_arrays(images, meta.image_size)  # as training resized them
    return ArrayDataset(images, index[data.labels], meta)


def _class_index(names: list[str], meta: DatasetMeta, dataset: str) -> torch.Tensor:
    """For each of the scored data's classes, the checkpoint's index of the class of that name,
    or of that id (ImageNet's WordNet ids: ``n01440764`` for torchvision's ``tench``).

    A checkpoint trained on unnamed labels (``"0"``, ``"1"``, ...) takes labels as indices. A
    folder with only some of the classes is scored; a class it was not trained on is an error:
    Fashion-MNIST's model on MNIST (10 classes each) gave a number that meant nothing. So is a
    name two of its classes share (the classic ImageNet label list has two "crane"s: a bird
    and a machine). A class whose name holds a "/" is also found as a folder named with "_".
    """
    # Compared in Unicode NFC: a checkpoint whose folder names macOS wrote decomposed (NFD).
    names = [unicodedata.normalize("NFC", name) for name in names]
    trained = [unicodedata.normalize("NFC", name) for name in meta.class_names]
    if names == trained or trained == [str(i) for i in range(len(trained))]:
        if len(names) != len(trained):
            raise DataError(
                f"{dataset} has {len(names)} classes but the checkpoint has {len(trained)}; "
                "score it on a matching dataset"
            )
        return torch.arange(len(names))
    ids = list(meta.class_ids) or list(imagenet_class_ids(meta.class_names))
    # No folder can be named "T-shirt/top" (Fashion-MNIST's class 0): its folder is T-shirt_top.
    folders = [(i, name.replace("/", "_")) for i, name in enumerate(trained) if "/" in name]
    lookup: dict[str, list[int]] = {}
    for index, name in [*enumerate(trained), *enumerate(ids), *folders]:
        if index not in lookup.setdefault(name, []):
            lookup[name].append(index)
    unknown = [name for name in names if name not in lookup]
    if unknown:
        raise DataError(_unknown_classes(unknown, names, trained, ids, dataset))
    shared = [name for name in names if len(lookup[name]) > 1]
    if shared:
        where = ", ".join(map(str, lookup[shared[0]]))
        fix = (
            f"name its folder by the class's id ({' or '.join(ids[i] for i in lookup[shared[0]])})"
            if ids
            else "rename the class"
        )
        raise DataError(
            f"{dataset}: class {shared[0]!r} names {len(lookup[shared[0]])} of the checkpoint's "
            f"classes ({where}); {fix}"
        )
    return torch.tensor([lookup[name][0] for name in names])


def _unknown_classes(unknown, names, trained, ids, dataset) -> str:
    shown = ", ".join(trained[:12]) + (", ..." if len(trained) > 12 else "")
    if ids:
        shown += f"; or by id: {', '.join(ids[:3])}, ..."
    numbered = names == [str(i) for i in range(len(names))]
    fix = (
        "if its labels follow the checkpoint's order, name them (a class_names array in the .npz)"
        if numbered
        else "score it on data of those classes"
    )
    return (
        f"{dataset} has class(es) {', '.join(unknown[:5])} that the checkpoint was not "
        f"trained on (its classes: {shown}); {fix}"
    )

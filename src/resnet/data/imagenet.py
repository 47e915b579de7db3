"""ImageNet-1k's classes by the two names they go by: WordNet ids and words.

Its data names each class by a WordNet id (``n01440764``): the folders of the validation set
sorted into class folders, Imagenette, ImageNet-V2's matched-frequency copy renamed, ImageNet-R
and -A. Classifiers name them by words (torchvision's ``tench``) or by the ids (timm's hub
``label_names``). The class order of every ImageNet-1k classifier is the ids sorted, the order
ILSVRC 2012's devkit and ``ImageFolder`` give. ``imagenet_wnids.txt`` holds those 1,000 ids.
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Optional

from resnet.errors import DataError

__all__ = [
    "imagenet_wnids",
    "imagenet_categories",
    "imagenet_class_ids",
    "is_wnid",
    "SOLUTION_FILE",
    "find_solution_file",
    "labelled_flat_folder",
]

_WNID = re.compile(r"n\d{8}")


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1,000 WordNet ids of ImageNet-1k, in its classifiers' order (sorted)."""
    text = resources.files("resnet.data").joinpath("imagenet_wnids.txt").read_text("ascii")
    return tuple(text.split())


@lru_cache(maxsize=1)
def imagenet_categories() -> tuple[str, ...]:
    """The 1,000 class words as torchvision's weights name them, in the same order."""
    from torchvision.models import ResNet50_Weights  # its categories ship with torchvision

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def is_wnid(name: str) -> bool:
    return _WNID.fullmatch(name) is not None


def imagenet_class_ids(class_names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The WordNet ids of ``class_names`` when they are ImageNet-1k's, by word or by id, in
    order; ``()`` for any other classes."""
    names = tuple(class_names)
    if len(names) == 1000 and names in (imagenet_categories(), imagenet_wnids()):
        return imagenet_wnids()
    return ()


# Kaggle's ImageNet (imagenet-object-localization-challenge): the validation images in one flat
# folder (ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG ...) and their classes in this
# file at the competition's root, a row per image: ImageId,PredictionString, where the string
# is boxes "wnid x0 y0 x1 y1 ..." and its first word the image's class.
SOLUTION_FILE = "LOC_val_solution.csv"
_SOLUTION_HEADER = ["ImageId", "PredictionString"]


def find_solution_file(folder: Path, levels: int = 4) -> Optional[Path]:
    """``LOC_val_solution.csv`` in ``folder`` or up to ``levels`` folders above it."""
    for candidate in [folder, *folder.parents][: levels + 1]:
        if (candidate / SOLUTION_FILE).is_file():
            return candidate / SOLUTION_FILE
    return None


def solution_labels(path: Path) -> dict[str, str]:
    """{image id: WordNet id} of a ``LOC_val_solution.csv``; ``DataError`` naming the line of
    anything else."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0] != _SOLUTION_HEADER:
        raise DataError(
            f"{path}: its first line is not {','.join(_SOLUTION_HEADER)}; it is not Kaggle's "
            "ImageNet solution file"
        )
    labels = {}
    for line, row in enumerate(rows[1:], start=2):
        words = row[1].split() if len(row) == 2 else []
        if not words or not is_wnid(words[0]):
            raise DataError(
                f"{path}:{line}: expected ImageId,PredictionString with a WordNet id first "
                f"(n01440764 ...), got {','.join(row)[:60]!r}"
            )
        labels[row[0]] = words[0]
    return labels


def labelled_flat_folder(folder: Path, images: list[Path]) -> Optional[tuple[list, list]]:
    """(class names, [(image, class index)]) of a flat folder of ImageNet validation images whose
    solution file is found; None without one. Every image must have its row."""
    solution = find_solution_file(folder)
    if solution is None:
        return None
    labels = solution_labels(solution)
    unlabelled = [image for image in images if image.stem not in labels]
    if unlabelled:
        raise DataError(
            f"{folder}: {len(unlabelled)} image(s) without a row in {solution} (the first: "
            f"{unlabelled[0].name}); keep only ImageNet's validation images there"
        )
    classes = sorted({labels[image.stem] for image in images})
    index = {name: i for i, name in enumerate(classes)}
    return classes, [(image, index[labels[image.stem]]) for image in images]

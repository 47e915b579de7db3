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
import tarfile
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

from resnet.data.matlab import read_mat
from resnet.errors import DataError

__all__ = [
    "imagenet_wnids",
    "imagenet_categories",
    "imagenet_class_ids",
    "is_wnid",
    "SOLUTION_FILE",
    "DEVKIT",
    "find_labels_file",
    "devkit_labels",
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


# ILSVRC 2012's development kit (``ILSVRC2012_devkit_t12``, unpacked or as its .tar.gz, which
# torchvision's ImageNet reads too): line i of data/ILSVRC2012_validation_ground_truth.txt is
# the class of ILSVRC2012_val_0000000i by its ILSVRC2012_ID, which data/meta.mat's synsets map to
# WordNet ids (the 1,000 without children). Those IDs are not the classifiers' sorted order.
DEVKIT = "ILSVRC2012_devkit_t12"
_META, _GROUND_TRUTH = "data/meta.mat", "data/ILSVRC2012_validation_ground_truth.txt"


def find_labels_file(folder: Path, levels: int = 4) -> Optional[Path]:
    """Kaggle's ``LOC_val_solution.csv`` or ILSVRC 2012's devkit (its folder or .tar.gz) in
    ``folder`` or up to ``levels`` folders above it: what labels a flat validation folder."""
    for candidate in [folder, *folder.parents][: levels + 1]:
        for name in (SOLUTION_FILE, DEVKIT, f"{DEVKIT}.tar.gz"):
            if (candidate / name).exists():
                return candidate / name
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


def devkit_labels(devkit: Path) -> dict[str, str]:
    """{image id: WordNet id} of ILSVRC 2012's 50,000 validation images from its devkit (a
    folder or the .tar.gz); ``DataError`` naming what is missing or not the devkit's."""
    meta, truth = _devkit_files(devkit)
    synsets = read_mat(meta, f"{devkit}: {_META}").get("synsets")
    try:
        leaves = {
            int(np.asarray(s["ILSVRC2012_ID"]).item()): str(s["WNID"])
            for s in synsets
            if int(np.asarray(s["num_children"]).item()) == 0
        }
    except (TypeError, KeyError, IndexError, ValueError):  # not a struct of those fields
        leaves = {}
    if sorted(leaves) != list(range(1, 1001)) or set(leaves.values()) != set(imagenet_wnids()):
        raise DataError(
            f"{devkit}: its {_META} does not map ILSVRC2012_IDs 1..1000 to ImageNet-1k's "
            "WordNet ids (a synsets struct of ILSVRC2012_ID, WNID, num_children); it is not "
            "ILSVRC 2012's devkit"
        )
    labels = {}
    for line, text in enumerate(truth.decode("ascii", "replace").splitlines(), start=1):
        if not text.strip().isdigit() or int(text) not in leaves:
            raise DataError(
                f"{devkit}: {_GROUND_TRUTH}:{line}: expected an ILSVRC2012_ID from 1 to 1000, "
                f"got {text[:40]!r}"
            )
        labels[f"ILSVRC2012_val_{line:08d}"] = leaves[int(text)]
    return labels


def _devkit_files(devkit: Path) -> tuple[bytes, bytes]:
    """The bytes of meta.mat and the ground truth, from the unpacked devkit or its .tar.gz."""
    if devkit.is_dir():
        missing = [name for name in (_META, _GROUND_TRUTH) if not (devkit / name).is_file()]
        if missing:
            raise DataError(f"{devkit}: no {missing[0]}; unpack {DEVKIT}.tar.gz whole there")
        return (devkit / _META).read_bytes(), (devkit / _GROUND_TRUTH).read_bytes()
    contents = []
    try:
        with tarfile.open(devkit, "r:gz") as archive:
            for name in (_META, _GROUND_TRUTH):
                member = archive.extractfile(f"{DEVKIT}/{name}")  # KeyError where it is not
                if member is None:
                    raise KeyError(name)
                contents.append(member.read())
    except KeyError:
        missing = (_META, _GROUND_TRUTH)[len(contents)]
        raise DataError(
            f"{devkit}: the archive has no {DEVKIT}/{missing}; is it ILSVRC 2012's devkit?"
        ) from None
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{devkit}: not a readable .tar.gz ({error})") from None
    return contents[0], contents[1]


def labelled_flat_folder(folder: Path, images: list[Path]) -> Optional[tuple[list, list]]:
    """(class names, [(image, class index)]) of a flat folder of ImageNet validation images whose
    labels are found (``find_labels_file``); None without them. Every image must have one."""
    source = find_labels_file(folder)
    if source is None:
        return None
    is_csv = source.name == SOLUTION_FILE
    labels = solution_labels(source) if is_csv else devkit_labels(source)
    unlabelled = [image for image in images if image.stem not in labels]
    if unlabelled:
        where = f"a row in {source}" if is_csv else f"a line in {source}'s {_GROUND_TRUTH}"
        raise DataError(
            f"{folder}: {len(unlabelled)} image(s) without {where} (the first: "
            f"{unlabelled[0].name}); keep only ImageNet's validation images there"
        )
    classes = sorted({labels[image.stem] for image in images})
    index = {name: i for i, name in enumerate(classes)}
    return classes, [(image, index[labels[image.stem]]) for image in images]

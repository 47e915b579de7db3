"""ImageNet-1k's classes by the two names they go by: WordNet ids and words.

Its data names each class by a WordNet id (``n01440764``): the folders of the validation set
sorted into class folders, Imagenette, ImageNet-V2's matched-frequency copy renamed, ImageNet-R
and -A. Classifiers name them by words (torchvision's ``tench``) or by the ids (timm's hub
``label_names``). The class order of every ImageNet-1k classifier is the ids sorted, the order
ILSVRC 2012's devkit and ``ImageFolder`` give. ``imagenet_wnids.txt`` holds those 1,000 ids.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

__all__ = ["imagenet_wnids", "imagenet_categories", "imagenet_class_ids", "is_wnid"]

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

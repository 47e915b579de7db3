"""Training a detector on one's own photos, annotated in COCO's format (``instances_train.json``
beside the images): the detection task practitioners start from torchvision's COCO detector,
as torchvision's fine-tuning tutorial does, or from a backbone's weights.

The classes are the file's categories (in the order of their ids); each epoch visits every
photo once in an order drawn from ``(seed, epoch)``, half of them mirrored with their boxes,
so a resumed run sees the batches the uninterrupted one saw. Crowd regions and boxes without
area are left out of the training targets (torchvision's losses have no use for either).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from resnet.detection.coco import CocoImages, read_coco_annotations
from resnet.detection.detector import DetectorConfig, build_detector
from resnet.detection.torchvision_files import (
    faster_rcnn_fields,
    is_torchvision_detector,
    read_detector_file,
    read_torchvision_detector,
)
from resnet.errors import ConfigError, WeightsError

__all__ = [
    "PHOTO_SIZE",
    "PHOTO_ROIS",
    "photo_detector",
    "photo_batches",
    "training_photos",
]

PHOTO_SIZE = 512  # the shorter side photos train at by default: torchvision's 800 is slow on a CPU
# RoIs sampled per photo for the box head's loss: torchvision's 512 make its two 1024-wide layers
# most of a CPU step; 128 train 3x faster (resnet18, 128 px, batch 4, 2-core EPYC: 1.0 s a step
# against 3.1 s). A photo holds a few objects, so mostly negatives are left unsampled.
PHOTO_ROIS = 128
# The class-specific layers a fine-tuned detector gets new, for its own classes.
_CLASS_LAYERS = ("roi_heads.box_predictor.",)


def photo_detector(
    class_names: list[str],
    model: Optional[str],
    weights: Optional[Any],
    canvas_size: Optional[int],
    trainable_layers: int,
) -> tuple[nn.Module, DetectorConfig]:
    """A Faster R-CNN for ``class_names``, at torchvision's sizes (the shorter
    side ``canvas_size``, default ``PHOTO_SIZE``): fine-tuned from a torchvision detector file
    (everything but its classifier), or on ``model`` with a backbone weight file or none."""
    side = canvas_size or PHOTO_SIZE
    fields = faster_rcnn_fields(model or "resnet18", class_names)
    fields |= {"canvas_size": side, "max_size": round(side * 1333 / 800)}
    fields |= {"trainable_layers": trainable_layers, "box_batch_size_per_image": PHOTO_ROIS}
    # A whole torchvision detector is read once here; a backbone's file by load_weights.
    held = read_detector_file(Path(weights)) if weights is not None else {}
    if not is_torchvision_detector(held):
        fields["norm_layer"] = "frozen_batch" if weights is not None else None
        config = DetectorConfig(**fields)
        return build_detector(config, weights=weights), config
    state, found = read_torchvision_detector(Path(weights), held)
    if found.get("architecture", "faster_rcnn") != "faster_rcnn":
        raise ConfigError(f"{weights}: a RetinaNet; fine-tuning is built for Faster R-CNN files")
    if model is not None and model != found["backbone"]:
        raise ConfigError(
            f"{weights} is a detector on {found['backbone']}, not {model}; drop --model"
        )
    config = DetectorConfig(**{**fields, "backbone": found["backbone"]})
    detector = build_detector(config)
    kept = {k: v for k, v in state.items() if not k.startswith(_CLASS_LAYERS)}
    missing, unexpected = detector.load_state_dict(kept, strict=False)
    if unexpected or any(not key.startswith(_CLASS_LAYERS) for key in missing):
        raise WeightsError(
            f"{weights}: does not fit a Faster R-CNN on {config.backbone} "
            f"({', '.join([*missing, *unexpected][:3])}); pass a fasterrcnn_resnet50_fpn file"
        )
    return detector, config


def photo_batches(
    photos: CocoImages, batch_size: int, seed: int, epoch: int, device: torch.device
) -> Iterator[tuple[list[Tensor], list[dict[str, Tensor]]]]:
    """One epoch of (images, targets): every photo once, in an order drawn from (seed, epoch),
    each mirrored with probability 1/2."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(photos.paths), generator=generator).tolist()
    mirrored = (torch.rand(len(order), generator=generator) < 0.5).tolist()
    for first in range(0, len(order), batch_size):
        images, targets = [], []
        for index in order[first : first + batch_size]:
            image = photos.image(index, 3)
            target = _training_target(photos.targets[index], *image.shape[-2:])
            if mirrored[index]:
                image, target = _mirror(image, target)
            images.append(image.to(device).float() / 255)
            targets.append({k: v.to(device) for k, v in target.items()})
        yield images, targets


def training_photos(annotations: Path, image_dir: Path) -> CocoImages:
    """The annotated photos, labelled as the file's categories in the order of their ids."""
    return read_coco_annotations(annotations, image_dir)


def _training_target(target: dict[str, Tensor], height: int, width: int) -> dict[str, Tensor]:
    boxes = target["boxes"].clone()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    keep = (target["iscrowd"] == 0) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return {"boxes": boxes[keep], "labels": target["labels"][keep]}


def _mirror(image: Tensor, target: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    width = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return image.flip(-1), {**target, "boxes": boxes}

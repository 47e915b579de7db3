"""torchvision's Faster R-CNN files, read into our detector: the COCO-trained
``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth`` (box AP 37.0 on COCO val2017) and detectors people
fine-tuned with torchvision's ``fasterrcnn_resnet50_fpn`` or ``resnet_fpn_backbone``.

torchvision builds that detector as ``build_detector`` builds ours: a ResNet whose module names
are ours (``backbone.body.layer1.0.conv1``) with frozen BatchNorms, the same feature pyramid, RPN
and box head. So its file is our detector at torchvision's sizes: each image resized to a shorter
side of 800 pixels (the longer at most 1333), ImageNet's normalisation, one anchor size per level
(32 to 512 pixels), 256 pyramid channels, a 1024-wide box head, and for COCO 91 outputs: the
background and COCO's 80 categories at their ids 1-90 (ten ids unused: "N/A").

Its v2 (``fasterrcnn_resnet50_fpn_v2``: normalised pyramid, convolutional box head), Mask R-CNN,
Keypoint R-CNN and RetinaNet files are other detectors and are refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from resnet.errors import WeightsError

__all__ = ["COCO_CATEGORIES", "is_torchvision_detector", "read_torchvision_detector"]

# COCO's category names by id (1-90); the ids COCO left unused are "N/A", as torchvision has them.
COCO_CATEGORIES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "N/A", "backpack",
    "umbrella", "N/A", "N/A", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
    "cake", "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A",
    "toilet", "N/A", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
    "oven", "toaster", "sink", "refrigerator", "N/A", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

# Blocks per stage -> the ResNet torchvision's resnet_fpn_backbone built.
_DEPTHS = {(2, 2, 2, 2): "resnet18", (3, 4, 6, 3): "resnet34", (3, 8, 36, 3): "resnet152"}
_BOTTLENECK_DEPTHS = {(3, 4, 6, 3): "resnet50", (3, 4, 23, 3): "resnet101"}
_OTHERS = (  # a key of each detector this is not, and what that detector is
    ("roi_heads.mask_head.", "Mask R-CNN (maskrcnn_resnet50_fpn)"),
    ("roi_heads.keypoint_head.", "Keypoint R-CNN (keypointrcnn_resnet50_fpn)"),
    ("head.classification_head.", "RetinaNet (retinanet_resnet50_fpn)"),
    ("backbone.fpn.inner_blocks.0.1.", "Faster R-CNN v2 (fasterrcnn_resnet50_fpn_v2)"),
    ("roi_heads.box_head.0.", "Faster R-CNN v2 (fasterrcnn_resnet50_fpn_v2)"),
)


def is_torchvision_detector(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is a detector torchvision builds on ``resnet_fpn_backbone``."""
    return "backbone.body.conv1.weight" in state and "backbone.fpn.inner_blocks.0.0.weight" in state


def read_torchvision_detector(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The state of a torchvision Faster R-CNN file (or of a checkpoint of torchvision's
    detection references, which keep it under ``model``) and the ``DetectorConfig`` fields
    that rebuild it."""
    from resnet.models.weight_files import read_weight_file

    held = read_weight_file(path)  # WeightsError for a missing or unreadable file
    state = held.get("model", held) if isinstance(held, Mapping) else {}
    if not isinstance(state, Mapping) or not is_torchvision_detector(state):
        raise WeightsError(
            f"{path}: neither a detector run folder nor torchvision's Faster R-CNN "
            f"(its first keys: {', '.join(map(str, list(state)[:3]))}); pass the folder written by "
            "`resnet detect train` or a fasterrcnn_resnet50_fpn file"
        )
    for key, what in _OTHERS:
        if any(name.startswith(key) for name in state):
            raise WeightsError(
                f"{path}: torchvision's {what}; of its detectors only Faster R-CNN "
                "(fasterrcnn_resnet50_fpn, its COCO file or one fine-tuned from it) is built here"
            )
    classes = state["roi_heads.box_predictor.cls_score.weight"].shape[0]
    names = list(COCO_CATEGORIES) if classes == 91 else [f"class {i}" for i in range(1, classes)]
    config = dict(
        backbone=_backbone(state, path), class_names=names, canvas_size=800, max_size=1333,
        in_chans=3, returned_layers=(1, 2, 3, 4), fpn_channels=256, trainable_layers=3,
        anchor_sizes=((32,), (64,), (128,), (256,), (512,)), representation_size=1024,
        image_mean=(0.485, 0.456, 0.406), image_std=(0.229, 0.224, 0.225),
        rpn_post_nms_top_n_train=2000, rpn_post_nms_top_n_test=1000,
        box_batch_size_per_image=512, norm_layer="frozen_batch", trained_on="images",
    )  # fmt: skip
    # A detector saved with BatchNorm (trained without frozen norms) counts its batches too.
    kept = {k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    return kept, config


def _backbone(state: Mapping[str, Tensor], path: Path) -> str:
    """The zoo model of the file's ResNet, from its blocks per stage and their kind."""
    blocks = tuple(
        len({key.split(".")[3] for key in state if key.startswith(f"backbone.body.layer{s}.")})
        for s in range(1, 5)
    )
    bottleneck = "backbone.body.layer1.0.conv3.weight" in state
    name = (_BOTTLENECK_DEPTHS if bottleneck else _DEPTHS).get(blocks)
    if name is None:
        raise WeightsError(
            f"{path}: a torchvision detector on a ResNet of {blocks} "
            f"{'bottleneck' if bottleneck else 'basic'} blocks, which is none of resnet18-152"
        )
    return name

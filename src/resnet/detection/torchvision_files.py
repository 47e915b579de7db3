"""torchvision's Faster R-CNN and RetinaNet files, read into our detector: the COCO-trained
``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth`` (box AP 37.0 on COCO val2017) and
``retinanet_resnet50_fpn_coco-eeacb38b.pth`` (36.4), and detectors people fine-tuned with
torchvision's ``fasterrcnn_resnet50_fpn`` / ``retinanet_resnet50_fpn`` or ``resnet_fpn_backbone``.

torchvision builds that detector as ``build_detector`` builds ours: a ResNet whose module names
are ours (``backbone.body.layer1.0.conv1``) with frozen BatchNorms, the same feature pyramid, RPN
and box head. So its file is our detector at torchvision's sizes: each image resized to a shorter
side of 800 pixels (the longer at most 1333), ImageNet's normalisation, one anchor size per level
(32 to 512 pixels), 256 pyramid channels, a 1024-wide box head, and for COCO 91 outputs: the
background and COCO's 80 categories at their ids 1-90 (ten ids unused: "N/A").

RetinaNet (Lin et al. 2017, arXiv 1708.02002) takes C3-C5, adds P6 and P7 from P5 and scores
nine anchors (three sizes an octave apart, three shapes) at each place with one head for all
levels. The v2 files (normalised pyramid and heads), Mask R-CNN and Keypoint R-CNN are other
detectors and are refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from torch import Tensor

from resnet.errors import WeightsError

__all__ = [
    "COCO_CATEGORIES",
    "is_torchvision_detector",
    "read_torchvision_detector",
    "read_detector_file",
    "faster_rcnn_fields",
]

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
    ("backbone.fpn.inner_blocks.0.1.", "Faster R-CNN v2 (fasterrcnn_resnet50_fpn_v2)"),
    ("roi_heads.box_head.0.", "Faster R-CNN v2 (fasterrcnn_resnet50_fpn_v2)"),
    ("head.classification_head.conv.0.1.", "RetinaNet v2 (retinanet_resnet50_fpn_v2)"),
)
_ANCHORS_PER_PLACE = 9  # RetinaNet: 3 sizes x 3 aspect ratios at each position of each level


def is_torchvision_detector(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is a detector torchvision builds on ``resnet_fpn_backbone``."""
    return "backbone.body.conv1.weight" in state and "backbone.fpn.inner_blocks.0.0.weight" in state


def read_detector_file(path: Path) -> Mapping[str, Any]:
    """What a weight file holds, taken out of a checkpoint of torchvision's detection references
    (``{"model": ...}``); ``WeightsError`` for a missing or unreadable file."""
    from resnet.models.weight_files import read_weight_file

    held = read_weight_file(path)
    state = held.get("model", held) if isinstance(held, Mapping) else {}
    return state if isinstance(state, Mapping) else {}


def read_torchvision_detector(
    path: Path, state: Optional[Mapping[str, Any]] = None
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The state of a torchvision Faster R-CNN or RetinaNet file (``state``, if it was read
    already with ``read_detector_file``) and the ``DetectorConfig`` fields that rebuild it."""
    state = read_detector_file(path) if state is None else state
    if not is_torchvision_detector(state):
        raise WeightsError(
            f"{path}: neither a detector run folder nor torchvision's Faster R-CNN "
            f"(its first keys: {', '.join(map(str, list(state)[:3]))}); pass the folder written by "
            "`resnet detect train` or a fasterrcnn_resnet50_fpn file"
        )
    for key, what in _OTHERS:
        if any(name.startswith(key) for name in state):
            raise WeightsError(
                f"{path}: torchvision's {what}; of its detectors only Faster R-CNN and RetinaNet "
                "(fasterrcnn_resnet50_fpn, retinanet_resnet50_fpn: their COCO files or ones "
                "fine-tuned from them) are built here"
            )
    # A detector saved with BatchNorm (trained without frozen norms) counts its batches too.
    kept = {k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    backbone = _backbone(state, path)
    if "head.classification_head.cls_logits.weight" in state:
        classes = state["head.classification_head.cls_logits.weight"].shape[0]
        names = _class_names(classes // _ANCHORS_PER_PLACE)
        return kept, {**faster_rcnn_fields(backbone, names), **_retinanet(state, path)}
    names = _class_names(state["roi_heads.box_predictor.cls_score.weight"].shape[0])
    return kept, faster_rcnn_fields(backbone, names)


def faster_rcnn_fields(backbone: str, class_names: list[str]) -> dict[str, Any]:
    """``DetectorConfig`` fields of torchvision's ``fasterrcnn_resnet50_fpn`` on ``backbone``:
    images resized to 800 (at most 1333), ImageNet's normalisation, frozen norms."""
    return dict(
        backbone=backbone, class_names=class_names, canvas_size=800, max_size=1333, in_chans=3,
        fpn_channels=256, trainable_layers=3, image_mean=(0.485, 0.456, 0.406),
        image_std=(0.229, 0.224, 0.225), norm_layer="frozen_batch", trained_on="images",
        returned_layers=(1, 2, 3, 4), anchor_sizes=((32,), (64,), (128,), (256,), (512,)),
        representation_size=1024, rpn_post_nms_top_n_train=2000, rpn_post_nms_top_n_test=1000,
        box_batch_size_per_image=512,
    )  # fmt: skip


def _retinanet(state: Mapping[str, Tensor], path: Path) -> dict[str, Any]:
    """RetinaNet v1's fields: C3-C5 and P6-P7 from P5, three anchor sizes an octave apart."""
    p6 = state.get("backbone.fpn.extra_blocks.p6.weight")
    if p6 is None or p6.shape[1] != 256:
        raise WeightsError(
            f"{path}: a RetinaNet whose P6 is not made from P5 (torchvision's v2 makes it from "
            "C5); only retinanet_resnet50_fpn (v1) is built here"
        )
    sizes = tuple(
        (x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))) for x in (32, 64, 128, 256, 512)
    )
    return dict(architecture="retinanet", returned_layers=(2, 3, 4), anchor_sizes=sizes)


def _class_names(classes: int) -> list[str]:
    """COCO's names for torchvision's 91 outputs, else "class 1" .. (background at 0)."""
    return list(COCO_CATEGORIES) if classes == 91 else [f"class {i}" for i in range(1, classes)]


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

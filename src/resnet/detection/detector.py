"""A torchvision Faster R-CNN (Ren et al. 2015, arXiv 1506.01497) on our FPN backbone, sized for
small canvases, and its self-describing checkpoint: ``detector.safetensors`` holds the weights,
``detector.json`` everything needed to rebuild the network (backbone, classes, canvas, anchors).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from resnet.errors import ConfigError, WeightsError
from resnet.io import atomic_save_json, atomic_write

__all__ = [
    "DetectorConfig",
    "build_detector",
    "default_item_sizes",
    "default_anchor_sizes",
    "save_detector",
    "load_detector",
    "WEIGHTS_FILE",
    "CONFIG_FILE",
]

ARCHITECTURES = ("faster_rcnn", "retinanet")
_TITLES = {"faster_rcnn": "Faster R-CNN", "retinanet": "RetinaNet"}
WEIGHTS_FILE = "detector.safetensors"
CONFIG_FILE = "detector.json"
_FORMAT = "resnet-detector/1"


@dataclass
class DetectorConfig:
    """Constructor arguments of a detector; stored next to its weights."""

    backbone: str = "resnet18"
    architecture: str = "faster_rcnn"  # or "retinanet" (torchvision's files only)
    class_names: list[str] = field(default_factory=list)  # without the background
    # Images are resized so that their shorter side is canvas_size (torchvision's min_size) and
    # their longer at most max_size (None: canvas_size, so a square canvas stays as it is).
    canvas_size: int = 64
    max_size: Optional[int] = None
    item_sizes: tuple[int, int] = (12, 28)  # item sides of the canvases it is trained on
    in_chans: int = 1  # Fashion-MNIST canvases are grayscale
    # C2..C5 as in torchvision, plus 'pool' from LastLevelMaxPool. RoIs of items this small are
    # pooled from the finest level, and the stride-4 one doubles the mAP of a short run
    # (mAP@0.5 0.62 vs 0.33 after 2000 canvases, measured) for ~1.3x the time of C3..C5.
    returned_layers: tuple[int, ...] = (1, 2, 3, 4)
    # 128, not torchvision's 256: together with the fewer proposals and RoIs below this makes a
    # CPU training step ~3x cheaper (0.47 vs 1.57 CPU-seconds for 8 canvases of 64 px, measured
    # with C3..C5), and ten item classes need far fewer channels than COCO's 80.
    fpn_channels: int = 128
    trainable_layers: int = 5  # no pretrained weights offline: train every stage
    # One tuple per pyramid level (strides 4..64), two sizes each, spanning the 12-28 px items.
    anchor_sizes: tuple[tuple[int, ...], ...] = ((8, 12), (16, 24), (32, 48), (64, 96), (128, 192))
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # trousers are tall, bags are wide
    representation_size: int = 256  # box head width; 1024 (torchvision) is slow on a CPU
    # Canvases are mostly black: measured 0.07 +- 0.20 on 64 px ones; only the scale matters.
    image_mean: tuple[float, ...] = (0.1,)
    image_std: tuple[float, ...] = (0.25,)
    # At most 4 objects per canvas: far fewer proposals and sampled RoIs than COCO's 2000 / 512.
    rpn_post_nms_top_n_train: int = 150
    rpn_post_nms_top_n_test: int = 100
    box_batch_size_per_image: int = 64
    # The backbone's norms: None keeps the network's own, "frozen_batch" freezes its BatchNorms
    # (torchvision's detectors, whose files hold no batch counters).
    norm_layer: Optional[str] = None
    # "canvases" (resnet detect train) or "images" (a torchvision file): the canvases of
    # evaluation and of predict without images are drawn from the classes of the first only.
    trained_on: str = "canvases"

    @property
    def num_classes(self) -> int:
        """Classes including the background (label 0), as torchvision counts them."""
        return len(self.class_names) + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check_canvases(self, what: str) -> None:
        """``ConfigError`` unless the detector was trained on the canvases ``what`` draws."""
        if self.trained_on != "canvases":
            shown = ", ".join(name for name in self.class_names[:3])
            raise ConfigError(
                f"this detector was trained on images of its own classes ({shown}, ...), not "
                f"on the Fashion-MNIST canvases {what}; give it images: resnet detect predict "
                "CHECKPOINT photo.jpg"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("item_sizes", "returned_layers", "aspect_ratios", "image_mean", "image_std"):
            if key in values:
                values[key] = tuple(values[key])
        if "anchor_sizes" in values:
            values["anchor_sizes"] = tuple(tuple(level) for level in values["anchor_sizes"])
        return cls(**values)


def default_item_sizes(canvas_size: int) -> tuple[int, int]:
    """Item sides for a canvas: 20-56 px on 128 px, 12-28 px on 64 px (at least 12 px, since
    a Fashion-MNIST item shrunk further loses the details that tell its class)."""
    return max(12, round(canvas_size * 20 / 128)), max(12, round(canvas_size * 56 / 128))


def default_anchor_sizes(canvas_size: int, levels: int = 5) -> tuple[tuple[int, ...], ...]:
    """Two anchor sides per pyramid level, doubling from 8 and 12 px on a 64 px canvas (so the
    finest levels cover the 12-28 px items), scaled with the canvas."""
    scale = canvas_size / 64
    return tuple((round(8 * 2**i * scale), round(12 * 2**i * scale)) for i in range(levels))


def build_detector(
    config: DetectorConfig, weights: Union[str, os.PathLike, None] = None
) -> nn.Module:
    """A torchvision ``FasterRCNN`` (or, for ``architecture="retinanet"``, ``RetinaNet``) on
    ``fpn_backbone(config.backbone)``.

    ``weights`` is an optional weight file for the backbone network (e.g. ImageNet weights).
    """
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    from resnet.detection.backbone import fpn_backbone

    if not config.class_names:
        raise ConfigError("a detector needs at least one class name")
    if config.architecture not in ARCHITECTURES:
        raise ConfigError(
            f"architecture must be one of {', '.join(ARCHITECTURES)}, got {config.architecture!r}"
        )
    retinanet = config.architecture == "retinanet"
    # Faster R-CNN pools one level more ('pool'); RetinaNet adds P6 and P7 (Lin et al. 2017).
    levels = len(config.returned_layers) + (2 if retinanet else 1)
    if len(config.anchor_sizes) != levels:
        raise ConfigError(
            f"anchor_sizes has {len(config.anchor_sizes)} levels but the pyramid has {levels}; "
            "give one tuple of sizes per returned layer plus one per extra level"
        )
    backbone = fpn_backbone(
        config.backbone,
        trainable_layers=config.trainable_layers,
        returned_layers=config.returned_layers,
        weights=weights,
        in_chans=config.in_chans,
        out_channels=config.fpn_channels,
        norm_layer=config.norm_layer,
        extra_blocks=_p6p7(config.fpn_channels) if retinanet else None,
    )
    anchors = AnchorGenerator(config.anchor_sizes, (config.aspect_ratios,) * levels)
    sizes = {
        "min_size": config.canvas_size,
        "max_size": config.max_size or config.canvas_size,
        "image_mean": list(config.image_mean),
        "image_std": list(config.image_std),
    }
    if retinanet:
        from torchvision.models.detection import RetinaNet

        return RetinaNet(backbone, config.num_classes, anchor_generator=anchors, **sizes)
    return _faster_rcnn(config, backbone, anchors, sizes)


def _p6p7(channels: int) -> nn.Module:
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    return LastLevelP6P7(channels, channels)  # from P5, as torchvision's RetinaNet v1


def _faster_rcnn(
    config: DetectorConfig, backbone: nn.Module, anchors: nn.Module, sizes: dict[str, Any]
) -> nn.Module:
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    feature_names = [str(i) for i in range(len(config.returned_layers))]
    return FasterRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(feature_names, output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(config.fpn_channels * 7 * 7, config.representation_size),
        box_predictor=FastRCNNPredictor(config.representation_size, config.num_classes),
        rpn_post_nms_top_n_train=config.rpn_post_nms_top_n_train,
        rpn_post_nms_top_n_test=config.rpn_post_nms_top_n_test,
        box_batch_size_per_image=config.box_batch_size_per_image,
        **sizes,
    )


def save_detector(
    model: nn.Module,
    config: DetectorConfig,
    out_dir: Union[str, os.PathLike],
    extra: Optional[dict[str, Any]] = None,
) -> Path:
    """Write ``detector.safetensors`` then ``detector.json`` into ``out_dir``, each atomically."""
    from safetensors.torch import save

    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_write(out_dir / WEIGHTS_FILE) as handle:
        handle.write(save(state))
    # The JSON is written last: a run killed in between leaves the previous pair readable.
    atomic_save_json(
        out_dir / CONFIG_FILE, {"format": _FORMAT, **config.to_dict(), **(extra or {})}
    )
    return out_dir


def load_detector(
    path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu"
) -> tuple[nn.Module, DetectorConfig]:
    """Rebuild a detector from a run folder, its ``detector.json`` or its ``.safetensors``, or
    from a torchvision Faster R-CNN file (``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth``)."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_file() and path.name not in (CONFIG_FILE, WEIGHTS_FILE):
        return _load_torchvision_detector(path, device)
    folder = path if path.is_dir() else path.parent
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise WeightsError(
            f"{path}: no detector checkpoint ({CONFIG_FILE} + {WEIGHTS_FILE}); "
            "pass the folder written by `resnet detect train`"
        )
    try:
        data = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"{config_path}: not a readable JSON file ({error})") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise WeightsError(f"{config_path}: not a detector checkpoint (expected {_FORMAT!r})")
    config = DetectorConfig.from_dict(data)
    model = build_detector(config)
    try:
        state = load_file(str(weights_path), device="cpu")
        model.load_state_dict(state)
    except Exception as error:  # safetensors and load_state_dict raise their own types
        message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise WeightsError(
            f"{weights_path}: does not fit the detector in {CONFIG_FILE} ({message}); "
            "retrain or restore the matching pair"
        ) from None
    return model.to(device), config


def _load_torchvision_detector(
    path: Path, device: Union[str, torch.device]
) -> tuple[nn.Module, DetectorConfig]:
    from resnet.detection.torchvision_files import read_torchvision_detector

    state, fields_of_it = read_torchvision_detector(path)
    config = DetectorConfig(**fields_of_it)
    model = build_detector(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[1:2] or [""]
        title = _TITLES[config.architecture]
        raise WeightsError(
            f"{path}: does not fit torchvision's {title} on {config.backbone} "
            f"({first[0].strip()[:200]}); pass the file a torchvision detector saved"
        ) from None
    return model.to(device), config

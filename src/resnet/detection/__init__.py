"""Object detection on the zoo's networks.

``fpn_backbone`` puts a feature pyramid on any 4-stage network for torchvision's ``FasterRCNN``
and ``RetinaNet``; ``canvas`` builds a detection task from real Fashion-MNIST items; and
``train_detector`` / ``evaluate_detector`` / ``predict_detections`` train, score (mAP with
torchmetrics) and draw a Faster R-CNN on it.
"""

from resnet.detection.backbone import BackboneWithFPN, fpn_backbone
from resnet.detection.canvas import (
    CanvasSet,
    build_canvases,
    fashion_mnist_canvases,
    load_canvases,
    save_canvases,
)
from resnet.detection.detector import DetectorConfig, build_detector, load_detector
from resnet.detection.draw import draw_detections, predict_detections
from resnet.detection.evaluate import evaluate_detector, mean_average_precision
from resnet.detection.train import train_detector

__all__ = [
    "fpn_backbone",
    "BackboneWithFPN",
    "CanvasSet",
    "build_canvases",
    "fashion_mnist_canvases",
    "save_canvases",
    "load_canvases",
    "DetectorConfig",
    "build_detector",
    "load_detector",
    "train_detector",
    "evaluate_detector",
    "mean_average_precision",
    "predict_detections",
    "draw_detections",
]

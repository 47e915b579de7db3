"""Detection mAP with torchmetrics' ``MeanAveragePrecision`` (COCO evaluation, not hand-rolled).

``map_50`` is AP at IoU 0.5 and ``map`` the COCO mean over IoU 0.50:0.05:0.95, both averaged
over classes; ``mar_100`` is the mean recall with up to 100 detections per image.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from resnet.detection.canvas import CanvasSet, build_canvases
from resnet.errors import ConfigError

__all__ = ["mean_average_precision", "run_detector", "evaluate_detector", "EVAL_SEED"]

EVAL_SEED = 12345  # held-out canvases: test-split items and a seed training never uses
# COCO's annotations also mark crowd regions (neither matched nor missed) and give each object's
# area, which sets its size range (small < 32^2 < medium < 96^2 < large); boxes give it otherwise.
_TARGET_KEYS = ("boxes", "labels", "iscrowd", "area")
_METRIC_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")


def mean_average_precision(
    predictions: Sequence[dict[str, Tensor]],
    targets: Sequence[dict[str, Tensor]],
    *,
    class_names: Optional[Sequence[str]] = None,
) -> dict[str, Any]:
    """COCO box mAP of ``predictions`` (boxes, scores, labels) against ``targets`` (boxes, labels;
    optionally iscrowd and area, as COCO's annotations have them).

    Boxes are ``x0, y0, x1, y1`` in pixels. With ``class_names`` the result also has
    ``per_class`` AP@[.5:.95] of every class by name (label ``i`` is ``class_names[i - 1]``;
    None where a class has no ground truth, as COCO leaves it out of the mean).
    """
    try:
        from torchmetrics.detection import MeanAveragePrecision
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "detection metrics need torchmetrics and pycocotools: pip install 'resnet[detection]'"
        ) from None
    if len(predictions) != len(targets):
        raise ConfigError(f"{len(predictions)} predictions for {len(targets)} targets")
    metric = MeanAveragePrecision(
        box_format="xyxy", iou_type="bbox", class_metrics=class_names is not None
    )
    metric.update(
        [{k: p[k].detach().cpu() for k in ("boxes", "scores", "labels")} for p in predictions],
        [{k: t[k].detach().cpu() for k in _TARGET_KEYS if k in t} for t in targets],
    )
    computed = metric.compute()
    result: dict[str, Any] = {key: float(computed[key]) for key in _METRIC_KEYS}
    if class_names is not None:
        per_class = computed["map_per_class"].reshape(-1).tolist()
        classes = computed["classes"].reshape(-1).tolist()
        found = {int(label): float(ap) for label, ap in zip(classes, per_class)}
        # COCO writes -1 for a class without ground truth (and leaves out one nobody predicted
        # either): no AP exists there, so None, never a number that could be averaged.
        result["per_class"] = {
            name: round(found[label], 4) if found.get(label, -1.0) >= 0 else None
            for label, name in enumerate(class_names, start=1)
        }
    return result


@torch.no_grad()
def run_detector(
    detector: nn.Module,
    canvases: CanvasSet,
    *,
    batch_size: int = 16,
    device: Union[str, torch.device] = "cpu",
) -> list[dict[str, Tensor]]:
    """Predictions of ``detector`` (in eval mode) for every canvas, moved to the CPU."""
    detector.eval()
    predictions = []
    for first in range(0, len(canvases), batch_size):
        batch = canvases.images[first : first + batch_size].to(device).float() / 255
        outputs = detector(list(batch))
        predictions += [{k: v.cpu() for k, v in output.items()} for output in outputs]
    return predictions


def evaluate_detector(
    detector: Union[str, os.PathLike, nn.Module],
    *,
    canvases: Optional[CanvasSet] = None,
    num_images: int = 500,
    seed: int = EVAL_SEED,
    batch_size: int = 16,
    device: str = "auto",
    data_dir: Union[str, os.PathLike, None] = None,
) -> dict[str, Any]:
    """mAP@0.5 and mAP@[.5:.95] of a detector on held-out canvases.

    Args:
        detector: a run folder / checkpoint written by ``train_detector``, or a module that maps
            a list of (C, H, W) float images to torchvision's list of prediction dicts.
        canvases: the evaluation set; by default ``num_images`` canvases of Fashion-MNIST test
            items, generated with the checkpoint's canvas size and ``seed``.
    """
    from resnet.detection.detector import load_detector
    from resnet.device import resolve_device

    run_device = resolve_device(device)
    if isinstance(detector, nn.Module):
        if canvases is None:
            raise ConfigError("evaluating a module needs canvases=; a checkpoint brings its own")
        model, class_names = detector.to(run_device), canvases.class_names
    else:
        model, config = load_detector(detector, run_device)
        class_names = config.class_names
        if canvases is None:
            config.check_canvases("evaluation draws")
            if num_images < 1:
                raise ConfigError(f"num_images must be at least 1, got {num_images}")
            from resnet.detection.canvas import load_items

            items, _ = load_items("test", data_dir)
            canvases = build_canvases(
                items.images, items.labels, num_images, class_names=class_names,
                canvas_size=config.canvas_size, item_sizes=config.item_sizes,
                channels=config.in_chans, seed=seed,
            )  # fmt: skip
    start = time.perf_counter()
    predictions = run_detector(model, canvases, batch_size=batch_size, device=run_device)
    seconds = time.perf_counter() - start
    result = mean_average_precision(
        predictions, canvases.targets(range(len(canvases))), class_names=class_names
    )
    result.update(
        images=len(canvases),
        objects=sum(len(labels) for labels in canvases.labels),
        seed=seed,
        seconds=round(seconds, 2),
    )
    return result

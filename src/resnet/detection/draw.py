"""Draw a detector's boxes, class names and scores on images and write them as PNG files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor

from resnet.errors import ConfigError
from resnet.io import atomic_write, output_names

__all__ = ["draw_detections", "predict_detections", "save_png"]

_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# One color per class (tab10), so the same class has the same color in every picture.
_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]  # fmt: skip


def draw_detections(
    image: Tensor,
    boxes: Tensor,
    labels: Tensor,
    scores: Optional[Tensor],
    class_names: Sequence[str],
    *,
    scale: int = 3,
) -> Tensor:
    """uint8 (C, H, W) image -> uint8 (3, H*scale, W*scale) with labelled boxes drawn on it.

    The image is enlarged (nearest neighbour) first, so the labels of a 128 px canvas can be read.
    ``labels`` are 1-based into ``class_names``; ``scores`` may be None (ground truth).
    """
    from torchvision.utils import draw_bounding_boxes

    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ConfigError("draw_detections needs a uint8 (1 or 3, H, W) image")
    if scale < 1:
        raise ConfigError(f"scale must be at least 1, got {scale}")
    image = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    image = image.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    texts = []
    for index, label in enumerate(labels.tolist()):
        name = class_names[label - 1] if 1 <= label <= len(class_names) else f"class {label}"
        texts.append(name if scores is None else f"{name} {float(scores[index]):.2f}")
    if not texts:
        return image.contiguous()
    colors = [_COLORS[(label - 1) % len(_COLORS)] for label in labels.tolist()]
    font = _FONT if Path(_FONT).is_file() else None
    return draw_bounding_boxes(
        image,
        boxes.detach().cpu().float() * scale,
        labels=texts,
        colors=colors,
        width=max(1, scale // 2),
        font=font,
        font_size=2 * scale + 6 if font else None,  # readable at any enlargement
        label_colors="white",
        label_background_colors=colors,  # white text on the class color reads on black canvases
        fill_labels=True,
    )


def save_png(image: Tensor, path: Union[str, os.PathLike]) -> Path:
    """Write a uint8 (C, H, W) tensor as a PNG file, atomically."""
    from PIL import Image

    path = Path(path)
    array = image.permute(1, 2, 0).contiguous().numpy()
    picture = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    with atomic_write(path) as handle:
        picture.save(handle, format="PNG")
    return path


def predict_detections(
    checkpoint: Union[str, os.PathLike],
    inputs: Sequence[Union[str, os.PathLike]] = (),
    *,
    out_dir: Union[str, os.PathLike] = "runs/detect-predict",
    num_canvases: int = 4,
    seed: int = 2024,
    score_threshold: float = 0.5,
    scale: Optional[int] = None,
    device: str = "auto",
    data_dir: Union[str, os.PathLike, None] = None,
) -> list[dict[str, Any]]:
    """Detect objects in PNG/JPEG ``inputs`` (or, with none, in ``num_canvases`` fresh canvases
    of Fashion-MNIST test items) and write ``<name>_boxes.png`` for each into ``out_dir``
    (``<name>-2_boxes.png`` where two inputs share a name).

    Returns one record per image: its source, the PNG written and the detections kept
    (``score >= score_threshold``) with box, class name and score. ``scale`` enlarges each
    picture before drawing (default: 3 for images of at most 256 pixels a side, else 1).
    """
    from resnet.detection.detector import load_detector
    from resnet.device import resolve_device

    if not 0.0 <= score_threshold <= 1.0:
        raise ConfigError(f"score_threshold must be in [0, 1], got {score_threshold}")
    run_device = resolve_device(device)
    model, config = load_detector(checkpoint, run_device)
    images, names = _load_inputs(inputs, config, num_canvases, seed, data_dir)
    model.eval()
    out_dir = Path(out_dir)
    records = []
    for image, name, filename in zip(images, names, output_names(names, "_boxes.png")):
        with torch.no_grad():
            output = model([image.to(run_device).float() / 255])[0]
        keep = output["scores"] >= score_threshold
        boxes, labels, scores = (output[k][keep].cpu() for k in ("boxes", "labels", "scores"))
        enlarge = scale or (3 if max(image.shape[-2:]) <= 256 else 1)
        drawn = draw_detections(image, boxes, labels, scores, config.class_names, scale=enlarge)
        written = save_png(drawn, out_dir / filename)
        detections = [
            {
                "box": [round(float(v), 1) for v in box],
                "label": config.class_names[int(label) - 1],
                "score": round(float(score), 4),
            }
            for box, label, score in zip(boxes, labels, scores)
        ]
        records.append({"source": name, "output": str(written), "detections": detections})
    return records


def _load_inputs(
    inputs: Sequence[Union[str, os.PathLike]],
    config: Any,
    num_canvases: int,
    seed: int,
    data_dir: Union[str, os.PathLike, None],
) -> tuple[list[Tensor], list[str]]:
    if inputs:
        from resnet.data.decode import read_image_tensor

        # DataError for a missing or non-image file
        images = [read_image_tensor(path, config.in_chans) for path in inputs]
        return images, [Path(path).stem for path in inputs]
    config.check_canvases("predict draws without images")
    if num_canvases < 1:
        raise ConfigError(f"num_canvases must be at least 1, got {num_canvases}")
    from resnet.detection.canvas import build_canvases, load_items

    items, _ = load_items("test", data_dir)
    canvases = build_canvases(
        items.images, items.labels, num_canvases, class_names=config.class_names,
        canvas_size=config.canvas_size, item_sizes=config.item_sizes,
                channels=config.in_chans, seed=seed,
    )  # fmt: skip
    return list(canvases.images), [f"canvas_{i:03d}" for i in range(num_canvases)]

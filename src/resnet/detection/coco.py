"""Scoring a detector on photos annotated in COCO's format (``instances_val2017.json`` beside
``val2017/``), as COCO scores it: every image of the file (or its first ``max_images``), crowd
regions neither matched nor missed (``iscrowd``), the annotations' own areas for the size
ranges, up to 100 detections an image (Lin et al. 2014, arXiv 1405.0312).

The file's categories are matched to the detector's classes by name, so torchvision's COCO
detector scores on COCO's ids and a detector of one's own classes on a file of those classes.

    {"images": [{"id": 139, "file_name": "000000000139.jpg", ...}, ...],
     "annotations": [{"image_id": 139, "category_id": 62, "bbox": [x, y, w, h],
                      "area": 4023.6, "iscrowd": 0, ...}, ...],
     "categories": [{"id": 62, "name": "chair", ...}, ...]}
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor

from resnet.errors import ConfigError, DataError

__all__ = [
    "CocoImages",
    "read_coco_annotations",
    "evaluate_on_coco",
    "coco_image_dir",
    "write_coco",
]


@dataclass
class CocoImages:
    """The annotated photos: their paths and targets (``boxes`` x0 y0 x1 y1 in pixels,
    ``labels`` the detector's, ``iscrowd``, ``area``), in the file's order."""

    paths: list[Path]
    targets: list[dict[str, Tensor]]
    sizes: list[Optional[tuple[int, int]]]  # (width, height) as the file states it, if it does
    class_names: list[str]  # label i is class_names[i - 1]

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int, channels: int) -> Tensor:
        """Photo ``index`` as uint8 (channels, H, W), upright as its EXIF says; ``DataError``
        if that is not the size the file states, which the boxes were drawn on."""
        from resnet.data.decode import read_image_tensor

        image = read_image_tensor(self.paths[index], channels)
        stated, found = self.sizes[index], (image.shape[-1], image.shape[-2])
        if stated is not None and stated != found:
            turned = " (its EXIF turns it a quarter)" if stated == found[::-1] else ""
            raise DataError(
                f"{self.paths[index]}: {found[0]}x{found[1]} upright{turned}, but the "
                f"annotations give {stated[0]}x{stated[1]}, and their boxes are drawn on that; "
                "save the photo as it was annotated, or annotate it upright"
            )
        return image


def read_coco_annotations(
    annotations: Union[str, os.PathLike],
    image_dir: Union[str, os.PathLike],
    class_names: Optional[Sequence[str]] = None,
    max_images: Optional[int] = None,
) -> CocoImages:
    """The photos of a COCO annotation file with their boxes, labelled as ``class_names``
    (label ``i`` is ``class_names[i - 1]``; by default the file's categories in the order of
    their ids, a new detector's classes); ``DataError`` naming what is wrong in the file."""
    annotations, image_dir = Path(annotations), Path(image_dir)
    data = _read_json(annotations)
    file_names = _names_by_id(data["categories"], annotations)  # each category named once
    if class_names is None:
        class_names = file_names
    labels = _labels_of_categories(data["categories"], class_names, annotations)
    if not data["images"]:
        raise DataError(f"{annotations}: lists no images; pass an annotation file with photos")
    listed = {_identifier(i, "id", annotations) for i in data["images"]}
    images = data["images"][:max_images] if max_images is not None else data["images"]
    by_image: dict[Any, list[Mapping[str, Any]]] = {
        _identifier(i, "id", annotations): [] for i in images
    }
    for annotation in data["annotations"]:
        image_id = _identifier(annotation, "image_id", annotations)
        if image_id not in listed:
            raise DataError(
                f"{annotations}: an annotation of image {image_id!r}, which 'images' lacks; "
                "fix the file"
            )
        if image_id in by_image:
            by_image[image_id].append(annotation)
    paths, targets, sizes = [], [], []
    for image in images:
        path = image_dir / str(_field(image, "file_name", annotations))
        if not path.is_file():
            raise DataError(
                f"{path}: an image {annotations.name} lists is not there; pass the folder of "
                "its images (val2017/ for instances_val2017.json) as the image folder"
            )
        paths.append(path)
        stated = (image.get("width"), image.get("height"))
        sizes.append(stated if all(isinstance(v, int) for v in stated) else None)
        targets.append(_target(by_image[image["id"]], labels, annotations, sizes[-1]))
    return CocoImages(paths, targets, sizes, list(class_names))


def coco_image_dir(annotations: Union[str, os.PathLike]) -> Path:
    """COCO's layout: annotations/instances_val2017.json beside the folder val2017/."""
    annotations = Path(annotations)
    if not annotations.is_file():  # its name is no matter when the file is not there
        raise DataError(f"{annotations}: no such annotation file; check the path")
    match = re.fullmatch(r"instances_(\w+)\.json", annotations.name)
    if match is None:
        raise ConfigError(
            f"{annotations}: not named as COCO's instances_<split>.json, so where its images are "
            "cannot be told; pass --image-dir"
        )
    return annotations.parent.parent / match.group(1)


def evaluate_on_coco(
    checkpoint: Union[str, os.PathLike],
    annotations: Union[str, os.PathLike],
    image_dir: Union[str, os.PathLike],
    *,
    max_images: Optional[int] = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """COCO box mAP of a detector (a run folder or a torchvision file) on annotated photos."""
    from resnet.detection.detector import load_detector
    from resnet.detection.evaluate import mean_average_precision
    from resnet.device import resolve_device

    if max_images is not None and max_images < 1:
        raise ConfigError(f"max_images must be at least 1, got {max_images}")
    run_device = resolve_device(device)
    model, config = load_detector(checkpoint, run_device)
    photos = read_coco_annotations(annotations, image_dir, config.class_names, max_images)
    log(f"scoring {len(photos.paths)} images of {Path(annotations).name} on {run_device}")
    model.eval()
    predictions, start = [], time.perf_counter()
    with torch.no_grad():
        for index in range(len(photos)):
            image = photos.image(index, config.in_chans).to(run_device).float() / 255
            output = model([image])[0]
            predictions.append({k: v.cpu() for k, v in output.items()})
    seconds = time.perf_counter() - start
    result = mean_average_precision(predictions, photos.targets, class_names=config.class_names)
    objects = sum(int((t["iscrowd"] == 0).sum()) for t in photos.targets)
    return {**result, "images": len(photos.paths), "objects": objects, "seconds": round(seconds, 2)}


def write_coco(canvases: Any, root: Union[str, os.PathLike], split: str) -> Path:
    """Write a ``CanvasSet`` in COCO's layout: ``root/split/000000000000.png`` ... and
    ``root/annotations/instances_<split>.json`` (written last, atomically), so that photo
    training and COCO scoring can be tried on real Fashion-MNIST items."""
    from PIL import Image

    from resnet.io import atomic_save_json, atomic_write

    if not re.fullmatch(r"\w+", split):
        raise ConfigError(f"split must be a word such as train or val2017, got {split!r}")
    root = Path(root)
    taken = [p for p in (root / split, root / "annotations" / f"instances_{split}.json")
             if p.is_file() or (p.is_dir() and any(p.iterdir()))]  # fmt: skip
    if taken:  # fewer canvases over more left the extra images behind, beside a new json
        raise ConfigError(
            f"{taken[0]} already holds a {split} split; pass a new --out or another --split"
        )
    (root / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(len(canvases)):
        name = f"{index:012d}.png"
        pixels = canvases.images[index].permute(1, 2, 0).numpy()
        with atomic_write(root / split / name) as handle:
            Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(handle, "PNG")
        height, width = pixels.shape[:2]
        images.append({"id": index, "file_name": name, "width": width, "height": height})
        for box, label in zip(canvases.boxes[index].tolist(), canvases.labels[index].tolist()):
            x0, y0, x1, y1 = box
            annotations.append({
                "id": len(annotations) + 1, "image_id": index, "category_id": label,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
            })  # fmt: skip
    categories = [{"id": i, "name": n} for i, n in enumerate(canvases.class_names, start=1)]
    out = root / "annotations" / f"instances_{split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {"images": images, "annotations": annotations, "categories": categories}
    atomic_save_json(out, data)
    return out


def _names_by_id(categories: list, path: Path) -> list[str]:
    """The names of the file's categories in the order of their ids, each once."""
    ordered = sorted(categories, key=lambda category: _sort_key(_field(category, "id", path)))
    names = [str(_field(category, "name", path)) for category in ordered]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated or not names:
        fault = f"categories named twice: {', '.join(repeated)}" if repeated else "no categories"
        raise DataError(f"{path}: {fault}; a detector's classes need one name each")
    return names


def _sort_key(value: Any) -> tuple[int, Any]:
    """Ids in order: numbers by value (COCO's), anything else after them by its text."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value) if is_number else (1, str(value))


def _read_json(path: Path) -> dict[str, list]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable COCO annotation file ({error})") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(key), list) for key in ("images", "annotations", "categories")
    ):
        raise DataError(
            f"{path}: not in COCO's format; expected lists 'images', 'annotations' and "
            "'categories' (instances_val2017.json has them)"
        )
    return data


def _field(record: Any, key: str, path: Path) -> Any:
    if not isinstance(record, Mapping) or key not in record:
        raise DataError(f"{path}: an entry without {key!r} ({str(record)[:80]}); fix the file")
    return record[key]


def _identifier(record: Any, key: str, path: Path) -> Any:
    """An id of the file: a number or a string (COCO's are numbers), never a list or a map."""
    value = _field(record, key, path)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(
            f"{path}: {key} {str(value)[:40]} is not a number or a string; fix the file"
        )
    return value


def _labels_of_categories(
    categories: list, class_names: Sequence[str], path: Path
) -> dict[Any, int]:
    """{category id: the detector's label of its name}; ``DataError`` for names it lacks."""
    label_of_name: dict[str, int] = {}
    for label, name in enumerate(class_names, start=1):
        label_of_name.setdefault(name, label)
    labels, unknown = {}, []
    for category in categories:
        name = _field(category, "name", path)
        if name in label_of_name:
            labels[_identifier(category, "id", path)] = label_of_name[name]
        else:
            unknown.append(str(name))
    if unknown:
        raise DataError(
            f"{path}: categories the detector does not know: {', '.join(unknown[:5])}"
            f"{' ...' if len(unknown) > 5 else ''}; its classes are "
            f"{', '.join(list(class_names)[:5])}{' ...' if len(class_names) > 5 else ''}"
        )
    return labels


def _target(
    annotations: list, labels: Mapping[Any, int], path: Path, size: Optional[tuple[int, int]]
) -> dict[str, Tensor]:
    """One image's boxes (x0, y0, x1, y1), labels, crowd flags and areas. A box with a NaN,
    an infinite or a negative side, or one wholly outside the image's stated ``size`` (width,
    height), is a DataError: it could never be found, yet would count as missed. Boxes of zero
    width or height (COCO has a few) are kept here; training leaves them out, as torchvision's
    references do."""
    boxes, classes, crowd, areas = [], [], [], []
    for annotation in annotations:
        box = _field(annotation, "bbox", path)
        category = _identifier(annotation, "category_id", path)
        if category not in labels:
            raise DataError(
                f"{path}: an annotation of category {category!r}, which 'categories' lacks"
            )
        if not (
            isinstance(box, list)
            and len(box) == 4
            and all(isinstance(v, (int, float)) for v in box)
        ):
            raise DataError(f"{path}: a bbox that is not [x, y, width, height]: {str(box)[:60]}")
        x, y, w, h = (float(v) for v in box)
        broken = not all(math.isfinite(v) for v in (x, y, w, h)) or w < 0 or h < 0
        outside = size is not None and (x >= size[0] or y >= size[1] or x + w <= 0 or y + h <= 0)
        if broken or outside:
            where = "not a box" if broken else "outside its image"
            raise DataError(
                f"{path}: bbox {box} of image {annotation.get('image_id')!r} is {where} "
                "([x, y, width, height], width and height >= 0); fix or drop that annotation"
            )
        boxes.append([x, y, x + w, y + h])
        classes.append(labels[category])
        crowd.append(int(bool(annotation.get("iscrowd", 0))))
        areas.append(float(annotation.get("area", w * h)))
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(classes, dtype=torch.int64),
        "iscrowd": torch.tensor(crowd, dtype=torch.int64),
        "area": torch.tensor(areas, dtype=torch.float32),
    }

"""A weight file someone else trained, made a checkpoint that ``predict``, ``explain``, ``eval``
and ``export`` take: the ImageNet classifiers of torchvision, timm, Keras, Caffe or Detectron
label images with their own 1,000 classes, without a training run.

A checkpoint also says how images become input (``DatasetMeta``: size, mean, std, class names),
which a weight file does not hold. Each comes from the caller, else from the hub folder the file
was downloaded in (timm's ``config.json`` ``pretrained_cfg``; transformers' ``id2label`` and
``preprocessor_config.json``), else ImageNet's as torchvision's weights take it (the Caffe,
Keras and Detectron files are converted to that convention on load).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from resnet.data.imagenet import imagenet_categories, imagenet_class_ids, imagenet_wnids
from resnet.data.meta import DatasetMeta
from resnet.engine.checkpoint import save_checkpoint
from resnet.errors import ConfigError, WeightsError
from resnet.models.attention_pool import AttentionPool2d
from resnet.models.caffe_names import TORCHVISION_MEAN as IMAGENET_MEAN
from resnet.models.caffe_names import TORCHVISION_STD as IMAGENET_STD

__all__ = ["import_weights", "hub_inputs", "Imported", "IMAGENET_MEAN", "IMAGENET_STD"]

TORCHVISION_CROP = 224 / 256  # torchvision's ImageNet evaluation: resize to 256, crop 224


@dataclass
class Imported:
    """What ``import_weights`` wrote: the checkpoint, the load report, and its ``DatasetMeta``
    with the names of the settings the hub folder's configs gave."""

    path: Path
    report: str
    meta: DatasetMeta
    from_hub: list[str]


def import_weights(
    source: str | os.PathLike,
    model_name: str,
    out_dir: str | os.PathLike,
    *,
    model_kwargs: Optional[dict[str, Any]] = None,
    class_names: Optional[Sequence[str]] = None,
    image_size: Optional[int] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    crop_fraction: Optional[float] = None,
) -> Imported:
    """Load ``source`` into ``model_name`` (``resnet.load_weights``) and write ``out_dir`` as a
    run folder holding that checkpoint (``best``).

    The file must hold its classifier: its outputs are the classes, named by ``class_names``
    (else its hub folder's labels, else ImageNet's 1,000 as torchvision lists them, for a
    1,000-way classifier). ``crop_fraction`` is what evaluation's centre crop keeps of the
    resized image (default: the hub's ``crop_pct``, else torchvision's 224/256).
    """
    import torch

    from resnet.models import model_entry

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: exists and is not an empty folder; choose a new --out")
    model, report = _classifier(source, model_name, dict(model_kwargs or {}))
    given = {"class_names": class_names, "image_size": image_size, "mean": mean, "std": std}
    given["crop_fraction"] = crop_fraction
    hub = {k: v for k, v in hub_inputs(source).items() if given.get(k) is None}
    if class_names is not None:  # the hub's class ids go with its names, not with given ones
        hub.pop("class_ids", None)
    explicit = {k: v for k, v in given.items() if v is not None}
    settings = {**_known_inputs(model), **hub, **explicit}
    names, ids = _classes(settings.get("class_names"), model.fc.out_features)
    ids = settings.get("class_ids") or ids
    meta = DatasetMeta(
        name=f"imported:{Path(source).name}",
        class_names=names,
        class_ids=list(ids),
        channels=int(model.in_chans),
        image_size=(settings.get("image_size") or model_entry(model_name).default_input_size,) * 2,
        mean=tuple(settings.get("mean", IMAGENET_MEAN)),
        std=tuple(settings.get("std", IMAGENET_STD)),
        crop_fraction=float(settings.get("crop_fraction", TORCHVISION_CROP)),
    )
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        path = save_checkpoint(
            out / "best", model.eval(), data_meta=meta, epoch=0, step=0, metrics={}
        )
    return Imported(path, report.describe(), meta, sorted(hub))


def _classifier(source: str | os.PathLike, model_name: str, kwargs: dict[str, Any]) -> tuple:
    """``model_name`` built with the file's number of classes and loaded: (model, report);
    ``WeightsError`` for a file that holds no classifier or only an embedding."""
    from resnet.models import create_model, load_weights
    from resnet.models.identify import classifier_outputs
    from resnet.models.pretrained import read_weights

    read = read_weights(source)  # once: the classes are counted on what is then loaded
    num_classes = classifier_outputs(read.state)
    if num_classes is None:
        raise WeightsError(
            f"{source}: holds no classifier (fc), so it names no classes; fine-tune it instead: "
            "resnet train --pretrained FILE"
        )
    if "num_classes" in kwargs and kwargs["num_classes"] != num_classes:
        raise ConfigError(
            f"model_kwargs num_classes={kwargs['num_classes']}, but the file's classifier has "
            f"{num_classes} outputs; leave num_classes out"
        )
    model = create_model(model_name, **{**kwargs, "num_classes": num_classes})
    report = load_weights(model, read)
    if isinstance(getattr(model, "global_pool", None), AttentionPool2d):
        raise WeightsError(
            f"{source}: a CLIP image tower, whose fc is the embedding projection (to be compared "
            "with text embeddings), not a classifier; fine-tune it: resnet train --pretrained FILE"
        )
    if report.backbone_only or report.dropped_classifier:
        raise WeightsError(
            f"{source}: loads into {model_name} without its classifier, so it names no classes; "
            "fine-tune it instead: resnet train --pretrained FILE"
        )
    return model, report


def hub_inputs(source: str | os.PathLike) -> dict[str, Any]:
    """What the hub folder holding ``source`` says of its inputs and classes (any of
    ``class_names``, ``class_ids``, ``image_size``, ``mean``, ``std``, ``crop_fraction``):
    timm's ``config.json`` (``pretrained_cfg``), transformers' (``id2label``) and
    ``preprocessor_config.json``."""
    path = Path(source)
    folder = path if path.is_dir() else path.parent
    found: dict[str, Any] = {}
    config = _json_object(folder / "config.json")
    timm = config.get("pretrained_cfg") or {}
    for key in ("mean", "std"):
        if isinstance(timm.get(key), list):
            found[key] = timm[key]
    if isinstance(timm.get("input_size"), list):
        found["image_size"] = int(timm["input_size"][-1])
    if isinstance(timm.get("crop_pct"), (int, float)) and 0.1 <= timm["crop_pct"] <= 1:
        found["crop_fraction"] = float(timm["crop_pct"])
    found.update(_hub_labels(config))
    found.update(_processor_inputs(_json_object(folder / "preprocessor_config.json")))
    return found


def _processor_inputs(processor: dict) -> dict[str, Any]:
    """What a transformers ``preprocessor_config.json`` feeds its net: ``crop_pct``; the side it
    crops to (else its resize's short side); mean and std as our 0..1 pixels see them, also
    where it skips normalising (``do_normalize: false``: 0 and 1) or rescaling (``do_rescale:
    false`` feeds 0..255: the statistics scaled by 1/255; another ``rescale_factor`` likewise)."""
    found: dict[str, Any] = {}
    crop = processor.get("crop_pct")
    if isinstance(crop, (int, float)) and 0.1 <= crop <= 1:
        found["crop_fraction"] = float(crop)
    for key in ("crop_size", "size"):
        side = processor.get(key)
        if isinstance(side, dict):
            side = side.get("height", side.get("shortest_edge"))
        if isinstance(side, int):
            found["image_size"] = side
            break
    mean, std = processor.get("image_mean"), processor.get("image_std")
    if processor.get("do_normalize") is False:
        mean, std = [0.0] * 3, [1.0] * 3
    if not (isinstance(mean, list) and isinstance(std, list)):
        return found
    factor = processor.get("rescale_factor", 1 / 255) if processor.get("do_rescale", True) else 1
    if isinstance(factor, (int, float)) and factor > 0:
        scale = 255 * factor  # the net sees (255 x factor x pixel - mean) / std
        found["mean"] = [float(m) / scale for m in mean]
        found["std"] = [float(s) / scale for s in std]
    return found


def _hub_labels(config: dict) -> dict[str, list]:
    """The classes a hub ``config.json`` names: timm's ``label_names`` (ids, ImageNet's WordNet
    ids among them) with their ``label_descriptions`` (words), else transformers' ``id2label``."""
    timm = config.get("pretrained_cfg") or {}
    labels = timm.get("label_names") or config.get("label_names")
    if isinstance(labels, dict):  # {index: name}, timm's form where indices have gaps
        labels = [labels.get(str(i), labels.get(i)) for i in range(len(labels))]
    id2label = config.get("id2label") or {}
    if not labels and id2label and not str(id2label.get("0", "LABEL_0")).startswith("LABEL_"):
        labels = [id2label.get(str(i)) for i in range(len(id2label))]
    if not labels:
        return {}
    if not all(isinstance(label, str) for label in labels):
        raise ConfigError(
            "the hub folder's config.json names its classes with gaps or non-strings; name "
            "them yourself: --class-names FILE, one per line, in the classifier's order"
        )
    words = timm.get("label_descriptions") or config.get("label_descriptions")
    described = isinstance(words, dict) and all(isinstance(words.get(n), str) for n in labels)
    if described and tuple(labels) != imagenet_wnids():  # ImageNet's: torchvision's words
        return {"class_names": [words[n] for n in labels], "class_ids": list(labels)}
    return {"class_names": list(labels)}


def _known_inputs(model: Any) -> dict[str, Any]:
    """What a family's files always assume of their input, whatever folder they came in: BiT's
    (Google's .npz, timm's resnetv2_*_bit) take [-1, 1], i.e. mean and std 0.5."""
    if getattr(model, "weight_standardization", False):  # BiT evaluates uncropped
        return {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "crop_fraction": 1.0}
    return {}


def _json_object(path: Path) -> dict:
    from resnet.models.hf_names import read_config_json

    content = read_config_json(path) if path.is_file() else None
    return content if isinstance(content, dict) else {}


def _classes(given: Optional[Sequence[str]], num_classes: int) -> tuple[list, tuple]:
    """The classifier's class names and, where they are ImageNet's, their WordNet ids."""
    if given is not None:
        names = [str(name) for name in given]
        if len(names) != num_classes:
            raise ConfigError(
                f"{len(names)} class names for a classifier of {num_classes} outputs; give one "
                "name per output, in the classifier's order"
            )
        if tuple(names) == imagenet_wnids():  # timm's label_names: shown as words
            return list(imagenet_categories()), imagenet_wnids()
        return names, imagenet_class_ids(names)
    if num_classes != 1000:
        raise ConfigError(
            f"the file's classifier has {num_classes} outputs, not ImageNet's 1,000: name them "
            "(--class-names FILE, one per line, in the classifier's order)"
        )
    return list(imagenet_categories()), imagenet_wnids()

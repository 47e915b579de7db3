"""A weight file someone else trained, made a checkpoint that ``predict``, ``explain``, ``eval``
and ``export`` take: the ImageNet classifiers of torchvision, timm, Keras, Caffe or Detectron
label images with their own 1,000 classes, without a training run.

A checkpoint also says how images become input (``DatasetMeta``: size, mean, std, class names),
which no weight file holds: the defaults are ImageNet's as torchvision's weights take it (the
Caffe, Keras and Detectron files are converted to that convention on load), and each can be set
for weights trained otherwise (BiT's and many timm nets' mean and std are 0.5).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from resnet.data.meta import DatasetMeta
from resnet.engine.checkpoint import save_checkpoint
from resnet.errors import ConfigError, WeightsError
from resnet.models.caffe_names import TORCHVISION_MEAN as IMAGENET_MEAN
from resnet.models.caffe_names import TORCHVISION_STD as IMAGENET_STD

__all__ = ["import_weights", "IMAGENET_MEAN", "IMAGENET_STD"]


def import_weights(
    source: str | os.PathLike,
    model_name: str,
    out_dir: str | os.PathLike,
    *,
    model_kwargs: Optional[dict[str, Any]] = None,
    class_names: Optional[Sequence[str]] = None,
    image_size: Optional[int] = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> tuple[Path, str]:
    """Load ``source`` into ``model_name`` (``resnet.load_weights``) and write ``out_dir`` as a
    run folder holding that checkpoint (``best``). Returns its path and the load report.

    The file must hold its classifier: its outputs are the classes, named by ``class_names``
    (default: ImageNet's 1,000, as torchvision lists them, for a 1,000-way classifier).
    """
    import torch

    from resnet.models import create_model, load_weights, model_entry

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: exists and is not an empty folder; choose a new --out")
    kwargs = dict(model_kwargs or {})
    num_classes = _classifier_outputs(source)
    if "num_classes" in kwargs and kwargs["num_classes"] != num_classes:
        raise ConfigError(
            f"model_kwargs num_classes={kwargs['num_classes']}, but the file's classifier has "
            f"{num_classes} outputs; leave num_classes out"
        )
    kwargs["num_classes"] = num_classes
    model = create_model(model_name, **kwargs)
    report = load_weights(model, source)
    if report.backbone_only or report.dropped_classifier:
        raise WeightsError(
            f"{source}: loads into {model_name} without its classifier, so it names no classes; "
            "fine-tune it instead: resnet train --pretrained FILE"
        )
    names = _class_names(class_names, num_classes)
    size = image_size or model_entry(model_name).default_input_size
    channels = int(kwargs.get("in_chans", 3))
    meta = DatasetMeta(
        name=f"imported:{Path(source).name}",
        class_names=names,
        channels=channels,
        image_size=(size, size),
        mean=tuple(mean),
        std=tuple(std),
    )
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        path = save_checkpoint(
            out / "best", model.eval(), data_meta=meta, epoch=0, step=0, metrics={}
        )
    return path, report.describe()


def _classifier_outputs(source: str | os.PathLike) -> int:
    """The number of outputs of the file's classifier (as ``load_weights`` names it: ``fc``)."""
    from resnet.models import read_state_dict
    from resnet.models.pretrained import CLASSIFIER_NAMES

    state = read_state_dict(source)
    for name in CLASSIFIER_NAMES:
        weight = state.get(f"{name}.weight")
        if weight is not None and weight.dim() == 2:
            return int(weight.shape[0])
    raise WeightsError(
        f"{source}: holds no classifier (fc), so it names no classes; fine-tune it instead: "
        "resnet train --pretrained FILE"
    )


def _class_names(given: Optional[Sequence[str]], num_classes: int) -> list[str]:
    if given is not None:
        names = [str(name) for name in given]
        if len(names) != num_classes:
            raise ConfigError(
                f"{len(names)} class names for a classifier of {num_classes} outputs; give one "
                "name per output, in the classifier's order"
            )
        return names
    if num_classes != 1000:
        raise ConfigError(
            f"the file's classifier has {num_classes} outputs, not ImageNet's 1,000: name them "
            "(--class-names FILE, one per line, in the classifier's order)"
        )
    from torchvision.models import ResNet50_Weights  # its categories ship with torchvision

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])

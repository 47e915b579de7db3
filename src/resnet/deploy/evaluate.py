"""``resnet eval``: score a checkpoint or an exported file on a dataset split: top-1/top-5
accuracy, per-class accuracy and the confusion matrix (CSV and a heat map)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from resnet.checks import switches
from resnet.engine.evaluate import check_tta_flip, evaluate_loader
from resnet.errors import ConfigError, NoSplitError

__all__ = ["evaluate", "write_confusion_matrix", "EVAL_DTYPES"]

EVAL_DTYPES = (None, "float32", "bfloat16", "float16")  # None: the checkpoint as it is (float32)
# The confusion matrix's picture: 2,400 pixels a side at most (ImageNet's 1,000 classes at 0.45
# inch each were 45,000), and class names only where they can be read.
MAX_PLOT_INCHES = 24.0
MAX_LABELLED_CLASSES = 60


def evaluate(
    checkpoint: str | os.PathLike,
    *,
    dataset: Optional[str] = None,
    split: str = "test",
    data_dir: Optional[str] = None,
    tta_flip: bool = False,
    tta_shift: int = 0,
    device: str = "auto",
    batch_size: int = 256,
    out_dir: Optional[str | os.PathLike] = None,
    dtype: Optional[str] = None,
    present_classes_only: bool = False,
) -> dict[str, Any]:
    """Score a checkpoint on a dataset split (default: the dataset it was trained on).

    ``checkpoint`` may also be a file of ``resnet export`` (ONNX, fp32 or int8, run by
    onnxruntime; pt2; TorchScript): it runs on the CPU, with the class names, normalisation and
    dataset in its metadata.

    ``dtype="bfloat16"`` (or ``"float16"`` on a GPU) scores the network as it would be deployed
    at that precision: ``optimize_for_inference(model, dtype=...)``, BN folded, 16-bit weights
    and activations. The default scores the float32 checkpoint as it is.

    ``tta_flip`` and ``tta_shift`` (pixels) average the image with its mirror image and with its
    copies shifted left and right (``resnet.engine.evaluate.tta_views``).

    Returns ``top1``, ``top5``, ``loss``, ``per_class_accuracy`` ({class name: accuracy}),
    ``confusion_matrix`` (rows: true class, columns: predicted), ``class_names``,
    ``num_samples``, ``dataset``, ``split``. With ``out_dir``, writes ``confusion_matrix.csv``
    and ``confusion_matrix.png`` there. Images are read at the checkpoint's size and normalised
    with its statistics; classes are matched by name, so a folder holding some of the classes
    is scored (``per_class_accuracy`` None for the others). A plain image folder
    (``root/<class>/<image>``) other than the training one is scored whole (split ``"all"``).
    ``present_classes_only`` ranks only the classes the scored data holds (ImageNet-R's and
    -A's protocol for a 1,000-class classifier: their 200); ``classes_ranked`` says how many.
    """
    switches(tta_flip=tta_flip)
    from resnet.data import make_loader
    from resnet.deploy.runtime import load_inference_model, training_precision
    from resnet.device import resolve_device

    if dtype not in EVAL_DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(EVAL_DTYPES[1:])}")
    target = resolve_device(device)
    model, info, target = load_inference_model(checkpoint, device=target)
    if dtype in ("bfloat16", "float16"):
        if info.get("exported"):
            raise ConfigError(
                f"{checkpoint}: an exported file keeps the precision it was exported with; "
                "drop --dtype, or score the checkpoint itself"
            )
        from resnet.deploy.optimize import optimize_for_inference

        model = optimize_for_inference(model.eval(), dtype=getattr(torch, dtype), inplace=True)
    data, meta, dataset, split = _data_to_score(info, dataset, split, data_dir)
    check_tta_flip(tta_flip, meta)
    loader = make_loader(data, batch_size, train=False, device=target)
    precision, context = training_precision(model, info, dtype, target)
    classes = torch.unique(torch.as_tensor(data.labels)) if present_classes_only else None
    scores = evaluate_loader(
        model,
        loader,
        num_classes=meta.num_classes,
        tta_flip=tta_flip,
        tta_shift=tta_shift,
        context=context,
        classes=classes,
    )
    matrix = scores.pop("confusion_matrix")
    totals = matrix.sum(1)
    result = {
        **scores,
        "per_class_accuracy": {  # None: the scored data holds no image of that class
            name: float(matrix[i, i] / totals[i]) if totals[i] else None
            for i, name in enumerate(meta.class_names)
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": list(meta.class_names),
        "dataset": str(dataset),
        "split": split,
        "tta_flip": tta_flip,
        "tta_shift": tta_shift,
        "dtype": precision,
        "classes_ranked": meta.num_classes if classes is None else len(classes),
    }
    if out_dir is not None:
        write_confusion_matrix(Path(out_dir), matrix, list(meta.class_names))
    return result


def _data_to_score(
    info: dict[str, Any], dataset: Optional[str], split: str, data_dir: Optional[str]
) -> tuple[Any, Any, str, str]:
    """The split to score, normalised as the checkpoint was trained, its metadata, the
    dataset's name (default: the one the checkpoint was trained on) and the split's name
    (``"all"`` for a plain image folder of other photos: it is scored whole)."""
    from resnet.data import DatasetMeta, as_trained, load_dataset

    trained = info.get("train_config") or {}
    meta = DatasetMeta.from_dict(info["data_meta"]) if info.get("data_meta") else None
    if dataset is None:
        dataset = trained.get("dataset") or (meta.name if meta else None)
        recorded = trained.get("data_dir")
        # The training machine's folder, where it exists here; else the default places.
        if data_dir is None and isinstance(recorded, str) and Path(recorded).is_dir():
            data_dir = recorded
    if dataset is None:
        raise ConfigError("the checkpoint does not name its dataset; pass --dataset")
    options = {"data_dir": data_dir}
    if _other_plain_folder(dataset, trained.get("dataset")):
        # root/<class>/<image> of new photos: every one is scored
        split, data = "all", load_dataset(dataset, "train", val_fraction=0.0)
    else:
        if dataset == trained.get("dataset") and trained.get("val_fraction"):
            # The run's own split: "val" its held-out part of train, "train" the rest (the whole
            # of train held the validation images too).
            options["val_fraction"] = trained["val_fraction"]
        try:
            data = load_dataset(dataset, split, **options)
        except NoSplitError as error:  # no val split of its own (a val/ folder) and none held out
            raise NoSplitError(
                f"{dataset} has no val split and the run held out none (val_fraction 0); "
                "use --split test"
            ) from error
    if meta is not None:
        data = as_trained(data, meta, dataset)
    return data, meta or data.meta, dataset, split


def _other_plain_folder(dataset: str, trained_on: Optional[str]) -> bool:
    """An image folder without train/val/test folders that the checkpoint was not trained on."""
    path = Path(dataset).expanduser()
    if not path.is_dir() or (path / "train").is_dir():
        return False
    return trained_on is None or path.resolve() != Path(trained_on).expanduser().resolve()


def _plotted(matrix: torch.Tensor, class_names: list[str]) -> tuple[list, list, torch.Tensor]:
    """The heat map's rows, columns and counts: the classes the scored data holds (a folder of
    Imagenette's 10 scored by an ImageNet classifier is 10 rows, not 1,000), and a last column
    "other classes" for predictions outside them."""
    present = (matrix.sum(1) > 0).nonzero().flatten()
    if len(present) in (0, len(class_names)):
        return class_names, class_names, matrix
    counts = matrix[present][:, present]
    other = matrix[present].sum(1) - counts.sum(1)
    rows = [class_names[i] for i in present.tolist()]
    return rows, [*rows, "other classes"], torch.cat([counts, other[:, None]], 1)


def write_confusion_matrix(out_dir: Path, matrix: torch.Tensor, class_names: list[str]) -> None:
    """``confusion_matrix.csv`` (counts, every class) and ``confusion_matrix.png``: a
    row-normalised heat map of the classes present, each non-zero cell labelled with its count
    (up to 20 classes; more would not fit), so the few confusions next to a dark diagonal can be
    read, not guessed from a pale shade; at most 24 inches a side, named up to 60 classes."""
    from resnet.io import atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    table = csv.writer(buffer)
    table.writerow(["true\\predicted", *class_names])
    for name, row in zip(class_names, matrix.tolist()):
        table.writerow([name, *row])
    with atomic_write(out_dir / "confusion_matrix.csv", "w") as handle:
        handle.write(buffer.getvalue())

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, columns, counts = _plotted(matrix, class_names)
    rates = (counts.double() / counts.sum(1, keepdim=True).clamp_min(1)).numpy()
    size = min(MAX_PLOT_INCHES, max(4.0, 0.45 * len(columns) + 2))
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    if len(columns) <= MAX_LABELLED_CLASSES:
        axes.set_xticks(range(len(columns)), columns, rotation=90)
        axes.set_yticks(range(len(rows)), rows)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(columns) <= 20:
        for (row, column), count in np.ndenumerate(counts.numpy()):
            if count:
                colour = "white" if rates[row, column] > 0.5 else "black"
                axes.text(column, row, str(count), ha="center", va="center", color=colour,
                          fontsize=8 if count < 1000 else 6)  # fmt: skip
    correct, total = int(matrix.trace()), int(matrix.sum())
    axes.set_title(f"top-1 {correct / max(total, 1):.2%} of {total} images")
    figure.colorbar(image, fraction=0.046)
    figure.tight_layout()
    with atomic_write(out_dir / "confusion_matrix.png") as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)

"""What every experiment shares: the run's device, evaluation batches and the loss/accuracy of a
model on a fixed set of batches.

The experiments measure; they do not train (training goes through ``resnet.engine.train``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from resnet.errors import ConfigError, DataError
from resnet.run import Run

__all__ = [
    "run_device",
    "load_split",
    "eval_batches",
    "evaluate_loss_accuracy",
    "model_for_dataset",
    "log",
    "json_ready",
    "save_result",
    "load_network",
    "checkpoint_dataset",
    "checkpoint_test_batches",
    "TestBatches",
    "check_same_training_data",
    "scored_networks",
]

Batches = Sequence[tuple[Tensor, Tensor]]


def log(message: str, *, enabled: bool = True) -> None:
    """One progress line on stderr, flushed at once so long runs show where they are."""
    if enabled:
        print(message, file=sys.stderr, flush=True)


def json_ready(obj: Any) -> Any:
    """``obj`` with NaN/inf turned into None (strict JSON) and private keys ("tensors") dropped."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items() if k != "tensors"}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_result(path: Union[str, Path], result: dict) -> Path:
    """Write an experiment's result as strict JSON, atomically; returns the path."""
    from resnet.io import atomic_save_json

    atomic_save_json(path, json_ready(result))
    return Path(path)


def run_device(run: Optional[Run]) -> torch.device:
    """The device of the command's run; without one (a library call), a run opened on "auto"."""
    return (run if run is not None else Run.open()).device


def load_split(
    dataset: Any, split: str, *, data_dir: Optional[str] = None, subset: Optional[int] = None
) -> Any:
    """A dataset object from a name/path (via ``resnet.data.load_dataset``) or one given as is,
    cut to ``subset`` samples when asked (its first, or an image folder's spread over its
    classes); a train subset larger than the split is refused, a test subset is at most that."""
    from resnet.data import load_dataset

    if isinstance(dataset, (str, Path)):
        # val_fraction=0: "train" is the whole official train split, as the engine trains on it.
        data = load_dataset(str(dataset), split, data_dir=data_dir, val_fraction=0.0)
    else:
        data = dataset
    if subset is not None:
        if subset < 1:
            raise ConfigError(f"subset size must be at least 1, got {subset}")
        # "Trained on 100000 images" of 60000 would be recorded otherwise; a test subset is
        # "at most N", as the engine's eval_subset (lesion's default 500 fits a small folder).
        if split == "train" and subset > len(data):
            raise ConfigError(
                f"a subset of {subset} is more than the {len(data)} images of the {split} split; "
                f"use at most {len(data)}"
            )
        data = data.subset(subset) if hasattr(data, "subset") else data
    return data


def eval_batches(
    dataset: Any,
    *,
    batch_size: int = 500,
    device: Union[str, torch.device] = "cpu",
    shuffle: bool = False,
    seed: int = 0,
) -> list[tuple[Tensor, Tensor]]:
    """The dataset as a list of normalized (x, y) batches on ``device``, materialised once so a
    landscape or lesion sweep evaluates exactly the same inputs at every point."""
    from resnet.data import make_loader

    # train=True only to get a seeded shuffle; augmentation stays off for a measurement.
    loader = make_loader(
        dataset, batch_size, train=shuffle, augment=False, device=device, seed=seed
    )
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(0)
    return [(x, y) for x, y in loader]


def evaluate_loss_accuracy(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> dict:
    """Mean cross-entropy and accuracy of ``model`` in eval mode (BN running statistics), from
    the package's one evaluation loop (``resnet.engine.evaluate.evaluate_loader``: float64
    sums, so two evaluations of the same weights agree to rounding)."""
    from resnet.engine.evaluate import evaluate_loader

    scores = evaluate_loader(model, batches)
    return {"loss": scores["loss"], "accuracy": scores["top1"], "samples": scores["num_samples"]}


def model_for_dataset(name: str, meta: Any, **kwargs: Any) -> nn.Module:
    """``create_model(name)`` sized for a dataset's classes and channels."""
    from resnet.models import create_model

    return create_model(name, num_classes=meta.num_classes, in_chans=meta.channels, **kwargs)


def load_network(source: Any, device: torch.device) -> tuple[nn.Module, dict]:
    """``(model, info)`` from a checkpoint path (``resnet.engine.checkpoint``) or a model."""
    if isinstance(source, nn.Module):
        return source.to(device), {"model_name": getattr(source, "model_name", "model")}
    from resnet.engine.checkpoint import load_checkpoint

    model, info = load_checkpoint(source, device=device)
    return model.to(device), info


@dataclass
class TestBatches:
    """The batches every network of an experiment is scored on, and what they came from."""

    batches: list[tuple[Tensor, Tensor]]
    dataset: str  # the scored dataset's name
    meta: Any  # the DatasetMeta of the checkpoint they are read for, None for a bare model
    device: torch.device


def checkpoint_test_batches(
    info: dict,
    dataset: Any,
    *,
    data_dir: Optional[str],
    subset: Optional[int],
    batch_size: int,
    device: torch.device,
) -> TestBatches:
    """The test split of ``dataset`` (default: the one the checkpoint was trained on), read as
    the checkpoint of ``info`` was trained."""
    from resnet.data import ArrayDataset, DatasetMeta, ImageFolderDataset, as_trained

    meta = DatasetMeta.from_dict(info["data_meta"]) if info.get("data_meta") else None
    dataset = dataset if dataset is not None else checkpoint_dataset(info)
    test = load_split(dataset, "test", data_dir=data_dir, subset=subset)
    name = test.meta.name
    if meta is not None and isinstance(test, (ArrayDataset, ImageFolderDataset)):
        test = as_trained(test, meta, str(dataset))
    return TestBatches(eval_batches(test, batch_size=batch_size, device=device), name, meta, device)


def scored_networks(
    checkpoints: dict[str, Any],
    dataset: Any,
    *,
    data_dir: Optional[str],
    subset: Optional[int],
    batch_size: int,
    run: Optional[Run],
) -> Iterator[tuple[str, Any, nn.Module, dict, TestBatches]]:
    """``(label, source, model, info, batches)`` for each of ``checkpoints`` (label -> path or
    model), loaded on the run's device one at a time. The batches are the same for all: the
    test split of ``dataset`` (default: the first checkpoint's), read as the first was trained;
    a later checkpoint trained on other data is refused (``check_same_training_data``)."""
    device, shared = run_device(run), None
    for label, source in checkpoints.items():
        model, info = load_network(source, device)
        shared = shared or checkpoint_test_batches(
            info, dataset, data_dir=data_dir, subset=subset, batch_size=batch_size, device=device
        )
        check_same_training_data(info, shared.meta, label)
        yield label, source, model, info, shared


def check_same_training_data(info: dict, meta: Any, label: str) -> None:
    """Every network of an experiment is scored on the same batches, read as the first one was
    trained: one trained on other classes, channels, size or statistics would get numbers that
    mean nothing, so it is refused."""
    from resnet.data import DatasetMeta

    if meta is None or not info.get("data_meta"):
        return
    other = DatasetMeta.from_dict(info["data_meta"])
    same = (
        other.class_names == meta.class_names
        and (other.channels, other.image_size) == (meta.channels, meta.image_size)
        and all(math.isclose(a, b, abs_tol=1e-3) for a, b in zip(other.mean + other.std,
                                                                  meta.mean + meta.std))
    )  # fmt: skip
    if not same:
        raise DataError(
            f"{label} was trained on other data ({other.name}: {other.num_classes} classes, "
            f"{other.channels}x{'x'.join(map(str, other.image_size))}) than the first "
            f"checkpoint ({meta.name}); run the experiment once per dataset"
        )


def checkpoint_dataset(info: dict) -> str:
    """The dataset a checkpoint was trained on, from its training config or data metadata."""
    config = info.get("train_config") or {}
    name = config.get("dataset") or (info.get("data_meta") or {}).get("name")
    if not name:
        raise ConfigError("the checkpoint does not say its dataset; pass --dataset")
    return name

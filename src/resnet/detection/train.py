"""Train a Faster R-CNN on our FPN backbone with Fashion-MNIST canvases, through the one training
loop of ``resnet.engine.loop`` (schedule, NaN stop, checkpoints and bitwise resume are its).

Every epoch draws fresh canvases from the Fashion-MNIST train items (seed ``(seed, epoch)``), so
the detector rarely sees the same arrangement twice; evaluation uses the test items. SGD with
momentum, a linear warm-up and a cosine decay, as torchvision's detection references do.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from resnet.checks import whole_number
from resnet.detection.backbone import check_fpn_model
from resnet.detection.canvas import build_canvases, check_item_sizes, load_items
from resnet.detection.coco import coco_image_dir
from resnet.detection.detector import (
    DetectorConfig,
    build_detector,
    default_anchor_sizes,
    default_item_sizes,
    save_detector,
)
from resnet.detection.photos import photo_batches, photo_detector, training_photos
from resnet.device import resolve_threads
from resnet.engine.distributed import DistContext
from resnet.engine.loop import LoopSettings, check_work_left, fit, read_state, restore_state
from resnet.engine.optim import build_optimizer, param_groups
from resnet.errors import ConfigError
from resnet.run import Run, check_new_run_folder

__all__ = [
    "train_detector",
    "TrainSummary",
    "DetectionTask",
    "CHANGEABLE_ON_RESUME",
    "check_same_run",
    "saved_settings",
]

_LOSSES = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")


@dataclass
class TrainSummary:
    """What a training run produced and how long it took."""

    out_dir: Path
    epochs: int
    steps: int
    final_loss: float  # mean total loss of the last epoch
    seconds: float


def train_detector(
    *,
    model: Optional[str] = None,
    epochs: int = 3,
    train_images: int = 1000,
    batch_size: int = 8,
    lr: float = 0.02,
    canvas_size: Optional[int] = None,
    item_sizes: Optional[tuple[int, int]] = None,
    returned_layers: tuple[int, ...] = (1, 2, 3, 4),
    out: Union[str, os.PathLike, None] = None,
    device: str = "auto",
    seed: int = 0,
    weights: Union[str, os.PathLike, None] = None,
    trainable_layers: int = 5,
    data_dir: Union[str, os.PathLike, None] = None,
    max_steps: Optional[int] = None,
    threads: Union[int, str, None] = None,
    resume: Union[str, os.PathLike, None] = None,
    run: Optional[Run] = None,
    log: Callable[[str], None] = print,
    annotations: Union[str, os.PathLike, None] = None,
    image_dir: Union[str, os.PathLike, None] = None,
) -> TrainSummary:
    """Train a detector; ``detector.safetensors`` + ``detector.json`` are saved after each epoch
    and ``last.state.pt`` holds the resume point (``resume=run folder`` continues it).

    Args:
        model: a 4-stage backbone of the zoo (default ``resnet18``, the CPU-friendly choice;
            a torchvision detector file in ``weights`` brings its own).
        epochs: passes, each over ``train_images`` freshly generated canvases (or the photos).
        batch_size, lr: SGD batch and peak learning rate (momentum 0.9, weight decay 1e-4).
        canvas_size, item_sizes: the canvas side and the range of item sides, in pixels
            (default 64 and ``default_item_sizes(canvas_size)``: 12-28 px on 64, 20-56 px on
            128); for photos the shorter side they are resized to (default ``PHOTO_SIZE``).
        returned_layers: backbone stages (1..4) feeding the pyramid.
        out: run folder; default ``runs/detect-<model>``, numbered if it exists.
        weights: optional weight file for the backbone network; without it every stage trains.
        max_steps: stop after this many optimizer steps in total (for smoke tests).
        threads: CPU threads for torch (``torch.set_num_threads``), or ``"free"``: the CPUs
            idle now; on a CPU shared with other jobs, fewer threads avoid the cost of
            oversubscribed, spinning worker threads.
        run: the command's opened run (default: one opened from ``device`` and ``out``).
        log: receives the header and the summary lines.
        annotations, image_dir: train on one's own photos annotated in COCO's format instead of
            canvases (``resnet.detection.photos``; ``image_dir`` defaults to COCO's layout);
            ``weights`` may then be a torchvision detector file to fine-tune.
    """
    if epochs < 1 or train_images < 1 or batch_size < 1:
        raise ConfigError("epochs, train_images and batch_size must all be at least 1")
    if not lr > 0:
        raise ConfigError(f"lr must be positive, got {lr}")
    whole_number("seed", seed, minimum=0)  # the canvases' numpy generator takes no negative
    if threads is not None:
        torch.set_num_threads(resolve_threads(threads))
    if model is not None:
        check_fpn_model(model)  # before the data is read
    if out is not None and resume is None and run is None:
        check_new_run_folder(out)
    torch.manual_seed(seed)
    # Data read and network built before the run folder is made: a refusal leaves nothing.
    config, detector, data = _detector_and_data(
        annotations, image_dir, model, weights, canvas_size, item_sizes, train_images,
        trainable_layers, returned_layers, data_dir,
    )  # fmt: skip
    model = config.backbone
    if annotations is not None:
        train_images = len(data.paths)
    if run is None:
        run = (
            Run.resume(resume, device=device)
            if resume is not None
            else Run.open(device=device, name=f"detect-{model}", folder=out)
        )
    detector = detector.to(run.device)
    steps_per_epoch = math.ceil(train_images / batch_size)
    total_steps = min(epochs * steps_per_epoch, max_steps or epochs * steps_per_epoch)
    settings = LoopSettings(
        epochs=epochs, lr=lr, schedule="cosine", max_steps=max_steps,
        warmup_epochs=min(100, total_steps // 5) / steps_per_epoch,
        # Training from scratch can spike early; clipping keeps one bad batch from diverging.
        grad_clip=10.0, progress=False,
    )  # fmt: skip
    optimizer = build_optimizer(param_groups(detector, weight_decay=1e-4), "sgd", lr=lr)
    record = {
        "model": model, "epochs": epochs, "train_images": train_images,
        "batch_size": batch_size, "lr": lr, "canvas_size": config.canvas_size, "seed": seed,
        "item_sizes": list(config.item_sizes) if annotations is None else None,
        "returned_layers": list(config.returned_layers),
        "trainable_layers": trainable_layers, "max_steps": max_steps,
        "weights": None if weights is None else str(weights), "device": str(run.device),
    }  # fmt: skip
    if annotations is not None:
        record |= {"annotations": str(annotations), "image_dir": str(image_dir or "")}
        task: DetectionTask = PhotoTask(detector, config, data, batch_size, seed, record)
    else:
        task = DetectionTask(detector, config, data, train_images, batch_size, seed, record)
    state = None
    if resume is not None:  # restored before the settings are rewritten: a misfit changes nothing
        check_same_run(run.folder(), record)
        state = restore_state(read_state(run), detector, optimizer, None, run.device)
        check_work_left(state, settings, steps_per_epoch, run.folder())
    run.write_settings(record)  # `resnet detect train --resume` reads them back
    what = "canvases" if annotations is None else f"photos of {Path(annotations).name}"
    log(
        f"training Faster R-CNN on {model} FPN: {train_images} {what} x {epochs} epochs, "
        f"batch {batch_size}, {config.canvas_size}px, device {run.device}, out {run.folder()}"
    )
    started = time.perf_counter()
    single = DistContext(rank=0, world_size=1, local_rank=0, device=run.device)
    loop = fit(run, task, optimizer, settings, ctx=single, state=state)
    final_loss = loop.history[-1]["loss"] if loop.history else float("nan")
    return TrainSummary(run.folder(), loop.epoch, loop.step, final_loss,
                        time.perf_counter() - started)  # fmt: skip


def _detector_and_data(
    annotations: Union[str, os.PathLike, None],
    image_dir: Union[str, os.PathLike, None],
    model: Optional[str],
    weights: Union[str, os.PathLike, None],
    canvas_size: Optional[int],
    item_sizes: Optional[tuple[int, int]],
    train_images: int,
    trainable_layers: int,
    returned_layers: tuple[int, ...],
    data_dir: Union[str, os.PathLike, None],
) -> tuple[DetectorConfig, nn.Module, Any]:
    """The detector's config, the detector, and its data: annotated photos, or the Fashion-MNIST
    train items canvases are drawn from."""
    if annotations is not None:
        photos_at = Path(annotations)
        photos = training_photos(photos_at, Path(image_dir or coco_image_dir(photos_at)))
        detector, config = photo_detector(
            photos.class_names, model, weights, canvas_size, trainable_layers
        )
        return config, detector, photos
    canvas_size = canvas_size or 64
    item_sizes = tuple(item_sizes or default_item_sizes(canvas_size))
    check_item_sizes(item_sizes, canvas_size, train_images)
    items, class_names = load_items("train", data_dir)
    config = DetectorConfig(
        backbone=model or "resnet18", class_names=class_names, canvas_size=canvas_size,
        item_sizes=item_sizes, returned_layers=tuple(returned_layers),
        anchor_sizes=default_anchor_sizes(canvas_size, len(returned_layers) + 1),
        trainable_layers=trainable_layers,
    )  # fmt: skip
    return config, build_detector(config, weights=weights), items


# What a resumed detection run may change: how long it trains, its peak lr and the device.
CHANGEABLE_ON_RESUME = ("epochs", "max_steps", "lr", "device")


def saved_settings(run_dir: Union[str, os.PathLike]) -> dict[str, Any]:
    """The settings a detection run was started with (its ``config.yaml``), or ``ConfigError``
    naming the file when it cannot be read or is not a detection run's."""
    import yaml

    from resnet.io import load_yaml

    path = Path(run_dir) / "config.yaml"
    try:
        saved = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the run's settings ({error}); pass a run "
                          "folder written by `resnet detect train`") from None  # fmt: skip
    if not isinstance(saved, dict) or "canvas_size" not in saved:
        raise ConfigError(f"{path}: not the settings of a detection run; pass its run folder")
    return saved


def check_same_run(run_dir: Union[str, os.PathLike], record: dict) -> None:
    """Refuse (``ConfigError``) to resume ``run_dir`` with settings that change its data or its
    network (canvas size, items, seed, batch, backbone): they were used silently mid-run."""
    saved = saved_settings(run_dir)
    for key, value in record.items():
        if key not in CHANGEABLE_ON_RESUME and saved.get(key) != value:
            raise ConfigError(
                f"--resume continues {run_dir} as it was trained: {key} is {saved.get(key)!r} "
                f"there, {value!r} given; drop --{key.replace('_', '-')}, or start a new run"
            )


class DetectionTask:
    """Canvases and boxes: torchvision's loss dict, summed; the checkpoint is the detector's."""

    columns = [
        ("epoch", "epoch", "d"), ("step", "step", "d"), ("loss", "loss", ".4f"),
        ("loss_classifier", "cls", ".3f"), ("loss_box_reg", "box", ".3f"),
        ("loss_objectness", "obj", ".3f"), ("loss_rpn_box_reg", "rpn", ".3f"),
        ("lr", "lr", ".5f"), ("images_per_s", "img/s", ".1f"), ("seconds", "seconds", ".0f"),
    ]  # fmt: skip

    def __init__(self, model: nn.Module, config: DetectorConfig, items: Any, num_images: int,
                 batch_size: int, seed: int, record: dict) -> None:  # fmt: skip
        self.model, self.config, self.items = model, config, items
        self.num_images, self.batch_size, self.seed, self.record = (
            num_images,
            batch_size,
            seed,
            record,
        )
        self.device = next(model.parameters()).device

    def steps_per_epoch(self) -> int:
        return math.ceil(self.num_images / self.batch_size)

    def batches(self, epoch: int) -> Iterator[tuple[list, list]]:
        canvases = build_canvases(
            self.items.images, self.items.labels, self.num_images,
            class_names=self.config.class_names, canvas_size=self.config.canvas_size,
            item_sizes=self.config.item_sizes, seed=(self.seed, epoch),
        )  # fmt: skip
        # Canvases are drawn independently, so their order is already random.
        for first in range(0, len(canvases), self.batch_size):
            indices = list(range(first, min(first + self.batch_size, len(canvases))))
            images = [canvases.images[i].to(self.device).float() / 255 for i in indices]
            yield images, canvases.targets(indices, self.device)

    def train_mode(self) -> None:
        self.model.train()

    def loss(self, runner: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = batch
        losses = runner(images, targets)
        loss = sum(losses.values())
        parts = [loss.detach()] + [losses[name].detach() for name in _LOSSES]
        count = torch.ones((), device=loss.device)
        return loss, torch.stack([*parts, count, count * len(images)])

    def epoch_row(self, sums: torch.Tensor) -> dict[str, float]:
        *totals, batches, images = sums.tolist()
        means = [total / max(batches, 1) for total in totals]
        return {"loss": means[0], **dict(zip(_LOSSES, means[1:])), "images": images}

    def evaluate(self, model: nn.Module, epoch: int) -> dict[str, float]:
        return {}  # mAP is `resnet detect eval`: scoring canvases every epoch costs a training

    def save(self, stem: Path, model: nn.Module, *, epoch: int, step: int, metrics: dict) -> None:
        record = {**self.record, "epochs_done": epoch, "steps": step,
                  "mean_loss_last_epoch": round(metrics["loss"], 5),
                  "seconds": round(metrics["seconds"], 1)}  # fmt: skip
        save_detector(model, self.config, stem.parent, extra={"training": record})


class PhotoTask(DetectionTask):
    """Annotated photos instead of canvases (``resnet.detection.photos``)."""

    def __init__(self, model: nn.Module, config: DetectorConfig, photos: Any, batch_size: int,
                 seed: int, record: dict) -> None:  # fmt: skip
        super().__init__(model, config, None, len(photos.paths), batch_size, seed, record)
        self.photos = photos

    def batches(self, epoch: int) -> Iterator[tuple[list, list]]:
        return photo_batches(self.photos, self.batch_size, self.seed, epoch, self.device)

"""Train a Faster R-CNN on our FPN backbone with Fashion-MNIST canvases.

Every epoch draws fresh canvases from the Fashion-MNIST train items (seed ``(seed, epoch)``), so
the detector rarely sees the same arrangement twice; evaluation uses the test items. SGD with
momentum, a linear warm-up and a cosine decay, as torchvision's detection references do.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from resnet.detection.backbone import check_fpn_model
from resnet.detection.canvas import build_canvases
from resnet.detection.detector import (
    DetectorConfig,
    build_detector,
    default_anchor_sizes,
    default_item_sizes,
    resolve_device,
    save_detector,
)
from resnet.errors import ConfigError

__all__ = ["train_detector", "TrainSummary", "next_run_dir", "load_items"]


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
    model: str = "resnet18",
    epochs: int = 3,
    train_images: int = 1000,
    batch_size: int = 8,
    lr: float = 0.02,
    canvas_size: int = 64,
    item_sizes: Optional[tuple[int, int]] = None,
    returned_layers: tuple[int, ...] = (1, 2, 3, 4),
    out: Union[str, os.PathLike, None] = None,
    device: str = "auto",
    seed: int = 0,
    weights: Union[str, os.PathLike, None] = None,
    trainable_layers: int = 5,
    data_dir: Union[str, os.PathLike, None] = None,
    max_steps: Optional[int] = None,
    threads: Optional[int] = None,
    log: Callable[[str], None] = print,
) -> TrainSummary:
    """Train a detector and save ``detector.safetensors`` + ``detector.json`` after each epoch.

    Args:
        model: a 4-stage backbone of the zoo (``resnet18`` is the CPU-friendly choice).
        epochs: passes, each over ``train_images`` freshly generated canvases.
        batch_size, lr: SGD batch and peak learning rate (momentum 0.9, weight decay 1e-4).
        canvas_size, item_sizes: the canvas side and the range of item sides, in pixels
            (default ``default_item_sizes(canvas_size)``: 12-28 px on 64, 20-56 px on 128).
        returned_layers: backbone stages (1..4) feeding the pyramid.
        out: run folder; default ``runs/detect-<model>``, numbered if it exists.
        weights: optional weight file for the backbone network; without it every stage trains.
        max_steps: stop after this many optimizer steps in total (for smoke tests).
        threads: CPU threads for torch (``torch.set_num_threads``); on a CPU shared with other
            jobs, 1 thread avoids the cost of oversubscribed, spinning worker threads.
        log: receives one line per progress report.
    """
    if epochs < 1 or train_images < 1 or batch_size < 1:
        raise ConfigError("epochs, train_images and batch_size must all be at least 1")
    if not lr > 0:
        raise ConfigError(f"lr must be positive, got {lr}")
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    run_device = resolve_device(device)
    check_fpn_model(model)  # before the data is read
    items, class_names = load_items("train", data_dir)
    item_sizes = tuple(item_sizes or default_item_sizes(canvas_size))
    config = DetectorConfig(
        backbone=model,
        class_names=class_names,
        canvas_size=canvas_size,
        item_sizes=item_sizes,
        returned_layers=tuple(returned_layers),
        anchor_sizes=default_anchor_sizes(canvas_size, len(returned_layers) + 1),
        trainable_layers=trainable_layers,
    )
    torch.manual_seed(seed)
    detector = build_detector(config, weights=weights).to(run_device)
    out_dir = Path(out) if out is not None else next_run_dir(f"runs/detect-{model}")
    parameters = [p for p in detector.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=1e-4)
    steps_per_epoch = math.ceil(train_images / batch_size)
    total_steps = min(epochs * steps_per_epoch, max_steps or epochs * steps_per_epoch)
    schedule = _warmup_cosine(total_steps, warmup=min(100, total_steps // 5))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    log(
        f"training Faster R-CNN on {model} FPN: {train_images} canvases x {epochs} epochs, "
        f"batch {batch_size}, {canvas_size}px, device {run_device}, out {out_dir}"
    )
    header = f"{'epoch':>5} {'step':>6} {'loss':>7} {'cls':>6} {'box':>6} {'obj':>6} {'rpn':>6}"
    log(f"{header} {'lr':>8} {'img/s':>6} {'time':>7}")
    start, step, epoch_loss = time.perf_counter(), 0, float("nan")
    completed_epochs = 0
    for epoch in range(epochs):
        canvases = build_canvases(
            items.images, items.labels, train_images, class_names=class_names,
            canvas_size=canvas_size, item_sizes=item_sizes, seed=(seed, epoch),
        )  # fmt: skip
        detector.train()
        sums: dict[str, float] = {}
        batches = 0
        for first in range(0, len(canvases), batch_size):
            if step >= total_steps:
                break
            # Canvases are drawn independently, so their order is already random.
            indices = list(range(first, min(first + batch_size, len(canvases))))
            images = [canvases.images[i].to(run_device).float() / 255 for i in indices]
            losses = detector(images, canvases.targets(indices, run_device))
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise ConfigError(
                    f"the loss became {loss.item()} at step {step}; lower --lr (now {lr})"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Training from scratch can spike early; clipping keeps one bad batch from diverging.
            torch.nn.utils.clip_grad_norm_(parameters, max_norm=10.0)
            optimizer.step()
            scheduler.step()
            step, batches = step + 1, batches + 1
            for name, value in {"loss": loss, **losses}.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            if step % 25 == 0 or step == total_steps:
                log(_row(epoch, step, {k: v / batches for k, v in sums.items()},
                         optimizer, step * batch_size, start))  # fmt: skip
        if batches == 0:
            break
        epoch_loss = sums["loss"] / batches
        completed_epochs = epoch + 1
        seconds = time.perf_counter() - start
        record = {
            "epochs": epochs, "epochs_done": completed_epochs, "steps": step,
            "train_images": train_images, "batch_size": batch_size, "lr": lr, "seed": seed,
            "item_sizes": list(item_sizes), "weights": None if weights is None else str(weights),
            "mean_loss_last_epoch": round(epoch_loss, 5), "seconds": round(seconds, 1),
            "device": str(run_device),
        }  # fmt: skip
        save_detector(detector, config, out_dir, extra={"training": record})
        log(f"epoch {epoch + 1}/{epochs} done: mean loss {epoch_loss:.4f}, {seconds:.0f}s, "
            f"saved {out_dir}")  # fmt: skip
    return TrainSummary(out_dir, completed_epochs, step, epoch_loss, time.perf_counter() - start)


def load_items(split: str, data_dir: Union[str, os.PathLike, None] = None):
    """Fashion-MNIST ``split`` as an ``ArrayDataset`` and its class names."""
    from resnet.data import load_dataset

    dataset = load_dataset("fashion-mnist", split, data_dir=data_dir)
    return dataset, list(dataset.meta.class_names)


def next_run_dir(base: Union[str, os.PathLike]) -> Path:
    """``base`` if it does not exist yet, else ``base-2``, ``base-3``, ..."""
    base = Path(base)
    if not base.exists():
        return base
    number = 2
    while Path(f"{base}-{number}").exists():
        number += 1
    return Path(f"{base}-{number}")


def _warmup_cosine(total_steps: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return 0.001 + (1 - 0.001) * step / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _row(
    epoch: int,
    step: int,
    means: dict[str, float],
    optimizer: torch.optim.Optimizer,
    images_seen: int,
    start: float,
) -> str:
    elapsed = time.perf_counter() - start
    return (
        f"{epoch + 1:>5} {step:>6} {means['loss']:>7.4f} {means['loss_classifier']:>6.3f} "
        f"{means['loss_box_reg']:>6.3f} {means['loss_objectness']:>6.3f} "
        f"{means['loss_rpn_box_reg']:>6.3f} {optimizer.param_groups[0]['lr']:>8.5f} "
        f"{images_seen / elapsed:>6.1f} {elapsed:>6.0f}s"
    )

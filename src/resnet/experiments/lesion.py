"""Lesion study: delete one block at a time from a trained network (Veit et al. 2016,
arXiv 1605.06431, §4).

A residual block computes ``relu(F(x) + x)``; deleting it means replacing it by the identity,
which in a trained ResNet removes only ``F``, since ``x`` already went through a ReLU and
``relu(x) = x``. Veit et al. find that a ResNet behaves like an ensemble of many paths of
different lengths, so losing one block costs little, while deleting a layer of a plain network
(VGG in the paper) cuts its only path and the accuracy collapses to chance.

A block whose output shape differs from its input (the first block of a stage: stride 2 and
more channels) cannot be replaced by the identity; such *downsampling* blocks are skipped (kept
in place) in both networks and listed as skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import torch
from torch import Tensor, nn

from resnet.errors import ConfigError
from resnet.experiments.common import (
    evaluate_loss_accuracy,
    log,
    scored_networks,
)
from resnet.run import Run

__all__ = ["list_blocks", "blocks_removed", "lesion_blocks", "run_lesion"]


def list_blocks(model: nn.Module, example: Tensor) -> list[dict[str, Any]]:
    """Every block of every stage, in depth order, with whether it keeps its input's shape.

    Shapes are measured on ``example`` with forward hooks (forward only, nothing is trained).
    """
    if not hasattr(model, "stages"):
        raise ConfigError(f"{type(model).__name__} has no stages(); use a ResNet or plain network")
    blocks, shapes, handles = [], {}, []
    for s, stage in enumerate(model.stages()):
        for b, block in enumerate(stage):
            key = (s, b)
            blocks.append({"stage": s, "block": b, "name": f"layer{s + 1}.{b}"})

            def hook(_m: nn.Module, inputs: tuple, output: Tensor, key: tuple = key) -> None:
                shapes[key] = (tuple(inputs[0].shape), tuple(output.shape))

            handles.append(block.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for index, entry in enumerate(blocks):
        shape_in, shape_out = shapes[(entry["stage"], entry["block"])]
        entry["index"] = index
        entry["downsampling"] = shape_in != shape_out
    return blocks


@contextlib.contextmanager
def blocks_removed(model: nn.Module, removed: Sequence[tuple[int, int]]) -> Iterator[nn.Module]:
    """Within the context, each (stage, block) in ``removed`` is replaced by ``nn.Identity``.

    The original blocks are put back on exit, even on error.
    """
    stages = model.stages()
    saved = []
    try:
        for s, b in removed:
            saved.append((s, b, stages[s][b]))
            stages[s][b] = nn.Identity()
        yield model
    finally:
        for s, b, block in reversed(saved):
            stages[s][b] = block


def lesion_blocks(
    model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]], *, progress: bool = False
) -> dict[str, Any]:
    """Accuracy of ``model`` with no block removed, then with each block removed in turn."""
    blocks = list_blocks(model, batches[0][0][:2])
    baseline = evaluate_loss_accuracy(model, batches)
    rows = []
    for entry in blocks:
        row = dict(entry)
        if entry["downsampling"]:
            row.update(skipped=True, accuracy=None, loss=None)
        else:
            with blocks_removed(model, [(entry["stage"], entry["block"])]):
                metrics = evaluate_loss_accuracy(model, batches)
            row.update(skipped=False, accuracy=metrics["accuracy"], loss=metrics["loss"])
        rows.append(row)
        log(
            f"    delete {row['name']:<10} "
            + ("skipped (downsampling)" if row["skipped"] else f"acc {row['accuracy']:.4f}"),
            enabled=progress,
        )
    kept = [row["accuracy"] for row in rows if not row["skipped"]]
    return {
        "baseline_accuracy": baseline["accuracy"],
        "baseline_loss": baseline["loss"],
        "blocks": rows,
        "mean_accuracy_after_deletion": sum(kept) / len(kept) if kept else None,
        "min_accuracy_after_deletion": min(kept) if kept else None,
        "skipped_blocks": [row["name"] for row in rows if row["skipped"]],
    }


def run_lesion(
    checkpoints: dict[str, Any],
    *,
    dataset: Any = None,
    data_dir: Optional[str] = None,
    eval_subset: Optional[int] = 2000,
    batch_size: int = 500,
    run: Optional[Run] = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Lesion every network in ``checkpoints`` (label -> checkpoint path, or a loaded model).

    The test split of ``dataset`` (default: the dataset the first checkpoint was trained on)
    is cut to its first ``eval_subset`` images. Returns plain data per network.
    """
    if not checkpoints:
        raise ConfigError("lesion needs at least one checkpoint; pass --checkpoint PATH")
    networks = []
    scored = scored_networks(
        checkpoints, dataset, data_dir=data_dir, subset=eval_subset, batch_size=batch_size, run=run
    )
    for label, source, model, info, shared in scored:
        log(f"  lesion {label}", enabled=progress)
        result = lesion_blocks(model, shared.batches, progress=progress)
        result.update(
            label=label,
            model=info.get("model_name", label),
            residual=bool(getattr(model, "residual", True)),
            checkpoint=str(source) if not isinstance(source, nn.Module) else None,
        )
        networks.append(result)
    return {
        "experiment": "lesion",
        "dataset": shared.dataset,
        "eval_samples": sum(int(y.numel()) for _, y in shared.batches),
        "device": str(shared.device),
        "downsampling_blocks": "skipped (their shortcut is not the identity)",
        "networks": networks,
    }

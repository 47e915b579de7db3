"""The classification task the one training loop runs (``resnet.engine.loop.Task``): batches,
cross-entropy, the per-epoch score on the eval split, checkpoints, and the final test numbers."""

from __future__ import annotations

import torch
from torch import nn

from resnet.engine.checkpoint import save_checkpoint
from resnet.engine.config import TrainConfig
from resnet.engine.evaluate import evaluate_loader, tta_view_count
from resnet.engine.optim import set_bn_eval
from resnet.engine.setup import RunData

__all__ = ["ClassificationTask", "batch_sums", "final_metrics", "scores_test_at_end"]


class ClassificationTask:
    """Images and labels: cross-entropy (with label smoothing), top-1 on the eval split."""

    def __init__(self, model: nn.Module, data: RunData, cfg: TrainConfig, frozen, context):
        self.model, self.data, self.cfg, self.frozen = model, data, cfg, frozen
        self.context = context  # autocast and kernels, see StepContext
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        split = data.eval_split
        self.columns = [
            ("epoch", "epoch", "d"), ("step", "step", "d"),
            ("train_loss", "train_loss", ".4f"), ("train_acc", "train_acc", ".4f"),
            (f"{split}_loss", f"{split}_loss", ".4f"), (f"{split}_acc", f"{split}_acc", ".4f"),
            ("lr", "lr", ".5f"), ("images_per_s", "img/s", ".0f"), ("seconds", "seconds", ".1f"),
        ]  # fmt: skip

    def steps_per_epoch(self) -> int:
        return len(self.data.train_loader)

    def batches(self, epoch: int):
        self.data.train_loader.set_epoch(epoch)
        return self.data.train_loader

    def train_mode(self) -> None:
        self.model.train()
        set_bn_eval(self.model, all_bn=self.cfg.freeze_bn, frozen_names=self.frozen)

    def loss(self, runner: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        logits = runner(x)
        loss = self.criterion(logits.float(), y)
        return loss, batch_sums(loss, logits, y)

    def epoch_row(self, sums: torch.Tensor) -> dict[str, float]:
        loss_sum, correct, seen = sums.tolist()
        return {
            "train_loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "images": seen,
        }

    def evaluate(self, model: nn.Module, epoch: int) -> dict[str, float]:
        loader, classes = self.data.eval_loader, self.data.meta.num_classes
        scores = evaluate_loader(model, loader, num_classes=classes, context=self.context)
        split = self.data.eval_split
        return {f"{split}_loss": scores["loss"], f"{split}_acc": scores["top1"]}

    def save(self, stem, model: nn.Module, *, epoch: int, step: int, metrics: dict) -> None:
        save_checkpoint(stem, model, data_meta=self.data.meta, epoch=epoch, step=step,
                        metrics=metrics, config=self.cfg.to_dict())  # fmt: skip


def batch_sums(loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(loss x images, correct, images) of one batch in float64, kept on the device: what an
    epoch's training row adds up (``ClassificationTask.epoch_row``)."""
    with torch.no_grad():
        return torch.stack(
            [loss.detach().double() * labels.numel(), (logits.argmax(1) == labels).sum().double(),
             torch.tensor(float(labels.numel()), dtype=torch.float64, device=labels.device)]
        )  # fmt: skip


def scores_test_at_end(cfg: TrainConfig, data: RunData) -> bool:
    """Whether the final model is scored on the test split after training: there is one, and
    the last epoch's row does not already hold its plain score on all of it."""
    if data.test_loader is None:
        return False
    tta = tta_view_count(flip=cfg.eval_tta, shift=cfg.eval_tta_shift) > 1
    return not (data.eval_split == "test" and not tta and cfg.eval_subset is None)


def final_metrics(cfg: TrainConfig, data: RunData, eval_model: nn.Module, history, context):
    """Test numbers of the final model (the last epoch's if they were computed on test already)."""
    final: dict[str, float] = {}
    if history:
        final["train_loss"] = history[-1]["train_loss"]
        final["train_acc"] = history[-1]["train_acc"]
    if data.test_loader is None:
        return final
    if not scores_test_at_end(cfg, data) and history:  # the last epoch scored all of test
        final["test_loss"] = history[-1]["test_loss"]
        final["test_acc"] = history[-1]["test_acc"]
        return final
    scores = evaluate_loader(
        eval_model,
        data.test_loader,
        num_classes=data.meta.num_classes,
        context=context,
        tta_flip=cfg.eval_tta,
        tta_shift=cfg.eval_tta_shift,
    )
    final.update(test_loss=scores["loss"], test_acc=scores["top1"], test_top5=scores["top5"])
    return final

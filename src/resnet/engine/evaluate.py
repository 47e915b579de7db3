"""Scoring a model on a loader: loss, top-1/top-5 accuracy and the confusion matrix (the
training loop's per-epoch evaluation; ``resnet eval`` is ``resnet.deploy.evaluate``)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from resnet.errors import DataError

__all__ = ["evaluate_loader"]


@torch.no_grad()
def evaluate_loader(
    model: nn.Module,
    loader: Any,
    *,
    num_classes: int,
    autocast: Any = None,
    tta_flip: bool = False,
) -> dict[str, Any]:
    """Loss, top-1, top-5 and the (true x predicted) confusion matrix of ``model`` on ``loader``.

    ``tta_flip`` averages the softmax of each image and its mirror image (flip along the last
    axis, i.e. width).
    """
    was_training = model.training
    model.eval()
    autocast = autocast if autocast is not None else contextlib.nullcontext()
    # An OnnxModule has no parameters and runs on the CPU.
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    top1 = torch.zeros((), dtype=torch.int64, device=device)
    top5 = torch.zeros((), dtype=torch.int64, device=device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    seen = 0
    k = min(5, num_classes)
    for x, y in loader:
        with autocast:
            logits = model(x).float()
            probs = logits.softmax(1)
            if tta_flip:
                probs = 0.5 * (probs + model(x.flip(-1)).float().softmax(1))
        # With TTA the loss is that of the averaged probabilities.
        loss_sum += F.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="sum").double()
        ranked = probs.topk(k, dim=1).indices  # (B, k)
        top1 += (ranked[:, 0] == y).sum()
        top5 += (ranked == y[:, None]).any(1).sum()
        confusion += torch.bincount(y * num_classes + ranked[:, 0], minlength=num_classes**2)
        seen += y.numel()
    model.train(was_training)
    if seen == 0:
        raise DataError("evaluation split is empty; check the dataset and split")
    matrix = confusion.view(num_classes, num_classes).cpu()
    return {
        "loss": float(loss_sum) / seen,
        "top1": float(top1) / seen,
        "top5": float(top5) / seen,
        "num_samples": seen,
        "confusion_matrix": matrix,
    }

"""Scoring a model on a loader: loss, top-1/top-5 accuracy and the confusion matrix (the
training loop's per-epoch evaluation; ``resnet eval`` is ``resnet.deploy.evaluate``)."""

from __future__ import annotations

import contextlib
import math
from typing import Any, Optional

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
    num_classes: Optional[int] = None,
    context: Any = None,
    tta_flip: bool = False,
) -> dict[str, Any]:
    """Loss, top-1, top-5 and the (true x predicted) confusion matrix of ``model`` on ``loader``
    (any iterable of (x, y) batches), in eval mode; the one evaluation loop of the package.

    The loss is the cross-entropy of float64 log-softmax, exact even for the huge logits of a
    loss-landscape point far from the trained weights. ``tta_flip`` averages the softmax of
    each image and its mirror image (flip along the last axis, i.e. width); the loss is then
    that of the averaged probabilities. ``num_classes`` None: the logits' width.
    """
    was_training = model.training
    model.eval()
    context = context if context is not None else contextlib.nullcontext()
    # An OnnxModule has no parameters and runs on the CPU.
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    top1 = torch.zeros((), dtype=torch.int64, device=device)
    top5 = torch.zeros((), dtype=torch.int64, device=device)
    confusion = None
    seen = 0
    for x, y in loader:
        with context:
            logits = model(x).float()
            flipped = model(x.flip(-1)).float() if tta_flip else None
        log_probs = logits.double().log_softmax(1)  # (B, classes)
        if flipped is not None:
            mirrored = flipped.double().log_softmax(1)
            log_probs = torch.logaddexp(log_probs, mirrored) - math.log(2.0)
        if confusion is None:
            num_classes = num_classes or log_probs.shape[1]
            confusion = torch.zeros(num_classes**2, dtype=torch.int64, device=device)
        loss_sum += F.nll_loss(log_probs, y, reduction="sum")
        ranked = log_probs.topk(min(5, num_classes), dim=1).indices  # (B, k)
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

"""Scoring a model on a loader: loss, top-1/top-5 accuracy and the confusion matrix (the
training loop's per-epoch evaluation; ``resnet eval`` is ``resnet.deploy.evaluate``)."""

from __future__ import annotations

import contextlib
import math
from typing import Any, Optional

import torch
from torch import nn
from torch.nn import functional as F

from resnet.checks import is_whole
from resnet.errors import ConfigError, DataError

__all__ = [
    "check_tta_flip",
    "check_tta_shift",
    "evaluate_loader",
    "shift_width",
    "tta_log_probs",
    "tta_view_count",
    "tta_views",
]


@torch.no_grad()
def evaluate_loader(
    model: nn.Module,
    loader: Any,
    *,
    num_classes: Optional[int] = None,
    context: Any = None,
    tta_flip: bool = False,
    tta_shift: int = 0,
    classes: Optional[torch.Tensor] = None,
) -> dict[str, Any]:
    """Loss, top-1, top-5 and the (true x predicted) confusion matrix of ``model`` on ``loader``
    (any iterable of (x, y) batches), in eval mode; the one evaluation loop of the package.

    The loss is the cross-entropy of float64 log-softmax, exact even for the huge logits of a
    loss-landscape point far from the trained weights. Test-time augmentation averages the
    softmax of the views of ``tta_views``: ``tta_flip`` adds each image's mirror image (flip
    along the last axis, i.e. width), ``tta_shift`` its copies shifted that many pixels left and
    right; the loss is then that of the averaged probabilities. ``num_classes`` None: the
    logits' width. ``classes`` (indices) ranks those classes only, their probabilities
    renormalised among them: ImageNet-R's and -A's protocol, 200 of a classifier's 1,000.
    """
    was_training = model.training
    model.eval()
    # An OnnxModule has no parameters and runs on the CPU.
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    top1 = torch.zeros((), dtype=torch.int64, device=device)
    top5 = torch.zeros((), dtype=torch.int64, device=device)
    confusion = None
    seen = 0
    for x, y in loader:
        log_probs = tta_log_probs(model, x, flip=tta_flip, shift=tta_shift, context=context)
        if confusion is None:
            num_classes = num_classes or log_probs.shape[1]
            confusion = torch.zeros(num_classes**2, dtype=torch.int64, device=device)
        if classes is None:
            loss_sum += F.nll_loss(log_probs, y, reduction="sum")
            ranked = log_probs.topk(min(5, num_classes), dim=1).indices  # (B, k)
        else:
            loss, ranked = _among(log_probs, y, classes.to(device))
            loss_sum += loss
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


def _among(log_probs: torch.Tensor, y: torch.Tensor, classes: torch.Tensor) -> tuple:
    """The summed loss and the top-5 (indices of all classes) ranking only ``classes``."""
    among = log_probs[:, classes]
    among = among - among.logsumexp(1, keepdim=True)
    position = torch.full((log_probs.shape[1],), -1, dtype=torch.int64, device=y.device)
    position[classes] = torch.arange(len(classes), device=y.device)
    if (position[y] < 0).any():
        raise DataError("a label outside the classes scored; score among the classes present")
    ranked = classes[among.topk(min(5, len(classes)), dim=1).indices]
    return F.nll_loss(among, position[y], reduction="sum"), ranked


def tta_log_probs(
    model: nn.Module, x: torch.Tensor, *, flip: bool = False, shift: int = 0, context: Any = None
) -> torch.Tensor:
    """The log of the mean softmax of ``model`` over the ``tta_views`` of ``x``: (B, K), in
    float64 (one view: its log-softmax). ``context`` wraps the forward passes (autocast)."""
    views = tta_views(x, flip=flip, shift=shift)
    with context if context is not None else contextlib.nullcontext():
        logits = [model(view).float() for view in views]
    log_probs = torch.stack([view.double().log_softmax(1) for view in logits])  # (V, B, K)
    return log_probs.logsumexp(0) - math.log(len(views))  # the mean probability


def tta_views(x: torch.Tensor, *, flip: bool = False, shift: int = 0) -> list[torch.Tensor]:
    """The views test-time augmentation averages: the images ``x`` (B, C, ..., W); with ``shift``
    their copies moved ``shift`` pixels right and left (``shift_width``: airbench's translate
    TTA); with ``flip`` the mirror image of each of those."""
    check_tta_shift(shift, x.shape[-1])
    shifted = [x, shift_width(x, shift), shift_width(x, -shift)] if shift else [x]
    return [mirror for view in shifted for mirror in ((view, view.flip(-1)) if flip else (view,))]


def check_tta_shift(shift: int, width: int) -> None:
    """``ConfigError`` unless a view shifted ``shift`` pixels keeps a column of the image."""
    if not is_whole(shift) or not 0 <= shift < width:
        raise ConfigError(
            f"the test-time shift must be a whole number of pixels from 0 to the images' "
            f"width - 1 ({width - 1}), got {shift}; lower eval_tta_shift (--tta-shift)"
        )


def check_tta_flip(flip: bool, meta: Any) -> None:
    """``ConfigError`` for mirrored test-time views of data whose classes a mirror changes
    (MNIST: it trains without flips, and a mirrored "2" is not a "2")."""
    from resnet.data import mirror_keeps_class

    if flip and not mirror_keeps_class(meta):
        raise ConfigError(
            f"{meta.name} trains without mirror images (a mirrored digit is another shape), so "
            "mirrored test-time views would lower its score; drop --tta (eval_tta)"
        )


def tta_view_count(*, flip: bool = False, shift: int = 0) -> int:
    """How many forward passes ``tta_views`` makes of each image (for time planning)."""
    return (2 if flip else 1) * (3 if shift else 1)


def shift_width(x: torch.Tensor, shift: int) -> torch.Tensor:
    """``x`` moved ``shift`` pixels right along its last axis (negative: left), the uncovered
    columns filled by reflection, as reflect padding followed by a crop back to the width."""
    if shift == 0:
        return x
    if shift > 0:
        return torch.cat([x[..., 1 : shift + 1].flip(-1), x[..., :-shift]], dim=-1)
    return torch.cat([x[..., -shift:], x[..., shift - 1 : -1].flip(-1)], dim=-1)

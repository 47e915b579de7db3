"""Parameter and FLOP counts for the model table (``resnet models``) and ``resnet summary``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["count_parameters", "count_gflops", "stage_summary"]


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Billions of multiply-adds for one input of ``input_shape`` (C, H, W).

    Like the paper ("3.6 billion FLOPs" for ResNet-34) and torchvision's tables, one
    multiply-add counts as one FLOP, i.e. half of what ``FlopCounterMode`` reports.
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_shape, device=_device_of(model))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9


def stage_summary(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """One row per stage (stem, layer1..N, head): output shape and parameter count."""
    was_training = model.training
    model.eval()
    rows = []
    x = torch.zeros(1, *input_shape, device=_device_of(model))
    with torch.no_grad():
        stem_modules = [model.conv1, model.bn1, model.maxpool]
        x = model.forward_stem(x)
        rows.append(_row("stem", x, sum(count_parameters(m) for m in stem_modules)))
        for info, stage in zip(model.feature_info, model.stages()):
            x = stage(x)
            rows.append(_row(info["module"], x, count_parameters(stage)))
        logits = model.forward_head(model.final_relu(model.norm(x)))
        head_params = count_parameters(model.fc) + count_parameters(model.norm)
        rows.append(_row("head", logits, head_params))
    model.train(was_training)
    return rows


def _row(name: str, x: torch.Tensor, params: int) -> dict[str, Any]:
    return {"stage": name, "output_shape": tuple(x.shape[1:]), "params": params}


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device

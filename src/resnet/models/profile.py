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
    """One row per stage (stem, layer1..N, head): output shape and parameter count.

    Works through the zoo's interface (``forward_stem``, ``stages``, ``forward_features``,
    ``forward_head``) alone: the stem's parameters are those of the modules ``forward_stem``
    runs, the head's everything the stem and stages do not hold, so the rows add up to the total.
    """
    was_training = model.training
    model.eval()
    rows = []
    x = torch.zeros(1, *input_shape, device=_device_of(model))
    with torch.no_grad():
        stem_modules: list[nn.Module] = []
        hooks = [
            m.register_forward_hook(lambda m, *_: stem_modules.append(m)) for m in model.modules()
        ]
        try:
            stem_out = model.forward_stem(x)
        finally:
            for hook in hooks:
                hook.remove()
        stem_params = _parameters_of(stem_modules)
        rows.append(_row("stem", stem_out, stem_params))
        out = stem_out
        for info, stage in zip(model.feature_info, model.stages()):
            out = stage(out)
            rows.append(_row(info["module"], out, count_parameters(stage)))
        logits = model.forward_head(model.forward_features(x))
        held = stem_params + sum(count_parameters(stage) for stage in model.stages())
        rows.append(_row("head", logits, count_parameters(model) - held))
    model.train(was_training)
    return rows


def _parameters_of(modules: list[nn.Module]) -> int:
    """Parameters of ``modules`` and their children, each counted once."""
    unique = {id(p): p for m in modules for p in m.parameters()}
    return sum(p.numel() for p in unique.values())


def _row(name: str, x: torch.Tensor, params: int) -> dict[str, Any]:
    return {"stage": name, "output_shape": tuple(x.shape[1:]), "params": params}


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device

"""Optimizers, learning-rate schedules and the weight EMA.

The schedule is a pure function of the global step, so resuming needs only the step number.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from resnet.errors import ConfigError

__all__ = [
    "param_groups",
    "build_optimizer",
    "lr_factor",
    "set_lr",
    "ModelEma",
    "freeze_backbone",
    "set_bn_eval",
]

# What comes before layer1 (torchvision's names; input_bn: Gluon v2's input normalisation).
_STEM_MODULES = ("input_bn", "conv1", "bn1", "stem")
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _classifier_prefix(model: nn.Module) -> str:
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else getattr(model, "fc", None)
    for name, module in model.named_modules():
        if module is head:
            return name + "."
    return "fc."


def param_groups(
    model: nn.Module,
    *,
    weight_decay: float,
    no_wd_norm_bias: bool = False,
    backbone_lr_scale: float = 1.0,
) -> list[dict]:
    """Trainable parameters split by (decay or not) x (backbone or classifier).

    Each group carries ``lr_scale`` (the backbone's smaller lr when fine-tuning) and a ``name``.
    With ``no_wd_norm_bias``, normalisation weights and all biases go to the no-decay groups.
    """
    no_decay_names: set[str] = set()
    if no_wd_norm_bias:
        for module_name, module in model.named_modules():
            for param_name, _ in module.named_parameters(recurse=False):
                full = f"{module_name}.{param_name}" if module_name else param_name
                if isinstance(module, _NORM_TYPES) or param_name == "bias":
                    no_decay_names.add(full)
    head = _classifier_prefix(model)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (name in no_decay_names, name.startswith(head))
        groups.setdefault(key, []).append(param)
    result = []
    for (no_decay, is_head), params in sorted(groups.items()):
        result.append(
            {
                "params": params,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": 1.0 if is_head else backbone_lr_scale,
                "name": ("head" if is_head else "backbone") + ("_no_decay" if no_decay else ""),
            }
        )
    if not result:
        raise ConfigError("no trainable parameters left; lower freeze_stages")
    return result


def build_optimizer(
    groups: list[dict],
    name: str,
    *,
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """SGD (with momentum, optionally Nesterov) or AdamW over ``param_groups(...)``."""
    for group in groups:
        group["lr"] = lr * group["lr_scale"]
    # foreach: one multi-tensor kernel per update instead of one small kernel per parameter
    # (torch defaults to it on GPUs only); the update is the same arithmetic.
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, foreach=True)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, foreach=True)
    if name == "muon":  # its groups depend on the model's structure, not on the groups alone
        raise ConfigError(
            "optimizer muon is built from the model: use resnet.engine.train.build_run_optimizer"
        )
    raise ConfigError(f"unknown optimizer {name!r}: choose sgd, adamw or muon")


def lr_factor(
    step: int,
    *,
    schedule: str,
    total_steps: int,
    warmup_steps: int = 0,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> float:
    """The multiplier of the peak lr at ``step`` (0-based, the step about to be taken).

    - ``step``: ``gamma ** (milestones passed)``, the paper's /10 at 32k and 48k (sec. 4.2);
    - ``cosine``: half a cosine from 1 to 0 over the steps after warmup (Loshchilov & Hutter);
    - ``onecycle``: linear up to 1 over warmup (default 30% of the run), then linearly to 0;
    - ``constant``: 1.
    Every schedule but onecycle starts with a linear warmup over ``warmup_steps``.
    """
    total_steps = max(total_steps, 1)
    if schedule == "onecycle":
        peak = warmup_steps if warmup_steps > 0 else max(1, round(0.3 * total_steps))
        low = 0.04  # start at lr/25, as torch's OneCycleLR does
        if step < peak:
            return low + (1.0 - low) * step / peak
        return max(0.0, (total_steps - step) / max(total_steps - peak, 1))
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "constant":
        return warm
    if schedule == "step":
        return warm * gamma ** sum(step >= m for m in milestones)
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        progress = min(max(progress, 0.0), 1.0)
        return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ConfigError(f"unknown schedule {schedule!r}: choose step, cosine, onecycle or constant")


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    """Set every group's lr to ``base_lr * factor * group lr_scale``; return the head's lr."""
    for group in optimizer.param_groups:
        group["lr"] = base_lr * factor * group.get("lr_scale", 1.0)
    return base_lr * factor


class ModelEma(nn.Module):
    """An exponential moving average of a model's weights: ``ema = d * ema + (1 - d) * w``.

    Float buffers (BatchNorm statistics) are averaged too; integer buffers are copied.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_state = self.module.state_dict()
        for name, value in model.state_dict().items():
            target = ema_state[name]
            if target.dtype.is_floating_point:
                target.lerp_(value.detach(), 1.0 - self.decay)
            else:
                target.copy_(value)


def freeze_backbone(model: nn.Module, stages: int) -> list[str]:
    """Freeze the stem and the first ``stages`` stages; return the frozen parameter names.

    The stem is what comes before ``layer1``: ``conv1`` and ``bn1`` (or a ``stem`` module).
    """
    if stages <= 0:
        return []
    stage_modules = model.stages() if hasattr(model, "stages") else []
    if stages > len(stage_modules):
        raise ConfigError(
            f"freeze_stages={stages} but {getattr(model, 'model_name', 'the model')} has "
            f"{len(stage_modules)} stages; use at most {len(stage_modules)}"
        )
    frozen_ids = {id(p) for stage in stage_modules[:stages] for p in stage.parameters()}
    frozen = []
    for name, param in model.named_parameters():
        if id(param) in frozen_ids or name.split(".")[0] in _STEM_MODULES:
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def set_bn_eval(model: nn.Module, *, all_bn: bool, frozen_names: Sequence[str]) -> None:
    """Put BatchNorm layers in eval mode: all of them, or those whose parameters are frozen.

    A frozen stage must keep its running statistics too, or its output drifts anyway.
    """
    frozen = set(frozen_names)
    # A frozen stem keeps the statistics of its parameter-free norms too (Gluon v2's input_bn).
    stem_frozen = any(name.split(".")[0] in _STEM_MODULES for name in frozen)
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and (
            all_bn
            or f"{name}.weight" in frozen
            or (stem_frozen and name.split(".")[0] in _STEM_MODULES)
        ):
            module.eval()

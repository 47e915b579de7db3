"""Keep checkpoints rebuildable when a model's default changes.

A checkpoint stores ``model_name`` and ``model_kwargs`` (what the user passed to
``create_model``) and is rebuilt with ``create_model(model_name, **model_kwargs)``. When a default
changes, a file written before must still get the old value. The rule:

- an option missing from a file's ``model_kwargs`` means its value of checkpoint format 1
  (``legacy_model_kwargs`` fills it in);
- ``create_model`` records every such option whose value now differs (``recorded_kwargs``), so
  files written after the change name it and never depend on the fill-in.

The changes so far:

- ``shortcut_pad``: option A's zero channels now go on both sides, as the public CIFAR
  reproduction does (files of format 1: ``"after"``);
- ``bias_downsample``: the 3D nets' projection conv now has a bias, as MONAI's (files: False);
- ``stem_out``: pre-activation nets now have a bare stem conv (arXiv 1603.05027); files had
  BN-ReLU after it (ImageNet pre-activation nets) or a ReLU (Wide ResNets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

__all__ = ["legacy_model_kwargs", "recorded_kwargs", "FORMAT1_MODELS"]

# The models a format-1 checkpoint can name: the zoo before these options existed.
FORMAT1_MODELS = frozenset(
    [f"resnet{d}" for d in (20, 32, 44, 56, 110, 1202)]
    + [f"plain{d}" for d in (20, 32, 44, 56, 110)]
    + ["wrn16_4", "wrn16_8", "wrn22_8", "wrn28_10", "wrn40_4"]
    + [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
    + ["resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d"]
    + ["wide_resnet50_2", "wide_resnet101_2"]
    + [f"preact_resnet{d}" for d in (18, 34, 50, 101, 152)]
    + [f"resnet{d}_3d" for d in (10, 18, 34, 50)]
    + ["resnet18_1d"]
)


def _format1_values(name: str) -> dict[str, Any]:
    if name not in FORMAT1_MODELS:
        return {}
    values: dict[str, Any] = {"shortcut_pad": "after", "bias_downsample": False}
    if name.startswith("preact_resnet"):
        values["stem_out"] = "norm_relu"
    elif name.startswith("wrn"):
        values["stem_out"] = "relu"
    return values


def legacy_model_kwargs(
    name: str, kwargs: Mapping[str, Any], format_version: int = 1
) -> dict[str, Any]:
    """``kwargs`` of a checkpoint of ``name``, completed with the values its file implies.

    Use it where a checkpoint is rebuilt: ``create_model(name, **legacy_model_kwargs(name,
    info["model_kwargs"], info["format_version"]))``.
    Options the file names are kept; options it omits get their format-1 value, which is right
    for every file of format <= ``format_version`` because ``create_model`` records all others.
    """
    del format_version  # every format so far: see the module docstring for why one rule fits
    return {**_format1_values(name), **kwargs}


def recorded_kwargs(name: str, kwargs: Mapping[str, Any], model: nn.Module) -> dict[str, Any]:
    """The options of ``model`` a checkpoint must name beyond ``kwargs``.

    Those whose value differs from what ``legacy_model_kwargs`` would fill in; the model exposes
    each as an attribute, None where the option does not shape it (e.g. ``shortcut_pad`` of a
    net without option A shortcuts).
    """
    recorded = {}
    for key, old in _format1_values(name).items():
        value = getattr(model, key, None)
        if key not in kwargs and value is not None and value != old:
            recorded[key] = value
    return recorded

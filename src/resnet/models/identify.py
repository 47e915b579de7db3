"""Which models of the zoo a weight file loads into, and with which options (``resnet inspect``).

A file rarely says what it is: ``resnet50-0676ba61.pth``, ``model.safetensors``, ``R-50.pkl``.
``inspect_weights`` reads it as ``load_weights`` would, then fits it (``fit_weights``) to every
registered model (built on the meta device: shapes only, no memory), each with the options the
file's layout requires (``layouts.Assumption``: the paper's v1 stride, BiT's standardised
convolutions ...)
and every other such option at its default, since a file that says nothing of, say,
anti-aliasing was not trained with it. A model fits when ``load_weights`` would take the file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from resnet.errors import ConfigError, WeightsError
from resnet.models.layouts import OPTION_DEFAULTS, Assumption
from resnet.models.pretrained import CLASSIFIER_NAMES, Source, fit_weights, read_weights
from resnet.models.registry import create_model, list_models

__all__ = ["inspect_weights", "classifier_outputs", "WeightsReport"]


@dataclass
class WeightsReport:
    """What a weight file holds and the models it loads into."""

    tensors: int
    values: int  # numbers in its floating-point tensors: weights and statistics
    classes: Optional[int]  # outputs of its classifier; None for a backbone
    kind: str  # what its layout says it is ("" for plain torchvision names)
    converted: str  # how its input convention is folded into the stem ("" if not)
    # The zoo's models it loads into, each with the options it must be built with beyond its own.
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)

    def command_options(self, name: str) -> str:
        """The ``resnet train --set`` that builds ``name`` so that the file loads ("" if none
        is needed). ``in_chans`` is not one: training takes it from the data's channels."""
        options = {k: v for k, v in self.fits.get(name, {}).items() if k != "in_chans"}
        if not options:
            return ""
        values = ", ".join(f"{k}: {_yaml(v)}" for k, v in options.items())
        return f'--set "model_kwargs={{{values}}}"'


def inspect_weights(
    source: Source, pattern: str = "*", known: Sequence[Assumption] = ()
) -> WeightsReport:
    """Read ``source`` and try it on each model matching ``pattern`` (``list_models``).
    ``known``: what else is known of the tensors (a run checkpoint's ``.json`` says how its
    network was built: ``resnet.engine.checkpoint.checkpoint_assumptions``)."""
    read = read_weights(source)
    state = read.state
    classes = classifier_outputs(state)
    assumptions = [*read.assumptions, *known]
    stated = {a.option: a.value for a in assumptions}
    options = {k: v for k, v in stated.items() if v != OPTION_DEFAULTS[k]}
    channels = _stem_channels(state)
    if channels not in (None, 3):  # a grey (or multispectral) net: built for its input
        options = {**options, "in_chans": channels}
    fits = {}
    for name in list_models(pattern):
        needed = _needed_options(name, read, stated, options, classes)
        if needed is not None:
            fits[name] = needed
    kind = assumptions[0].what if assumptions else ""
    # First the models the file's layout names (timm's config.json: resnetaa50d), then those
    # that need no option; parameter-free parts (a stem pool) let others fit key for key too.
    ranked = sorted(fits, key=lambda name: (name not in _words(kind), bool(fits[name])))
    fits = {name: fits[name] for name in ranked}
    return WeightsReport(
        tensors=len(state),
        values=sum(t.numel() for k, t in state.items() if t.is_floating_point()),
        classes=classes,
        kind=kind,
        converted=read.converted,
        fits=fits,
    )


def _needed_options(
    name: str, read: Any, stated: dict, options: dict, classes: Optional[int]
) -> Optional[dict[str, Any]]:
    """The options ``name`` must be built with for the file to load (``{}``: none beyond its
    own), or None where it does not load."""
    for needed in ({}, options) if options else ({},):
        kwargs = {**needed, **({} if classes is None else {"num_classes": classes})}
        try:
            with torch.device("meta"):
                model = create_model(name, **kwargs)
        except (ConfigError, TypeError):  # an option this model does not take
            continue
        wanted = {**OPTION_DEFAULTS, **stated}
        # Unstated options at their defaults: an anti-aliased net is not a plain file's.
        if any(getattr(model, k, default) != wanted[k] for k, default in OPTION_DEFAULTS.items()):
            continue
        try:
            fit_weights(model, read)
        except WeightsError:
            continue  # the next try may build it for the file's input channels
        return needed
    return None


def _stem_channels(state: dict) -> Optional[int]:
    """The input channels of the first convolution of ``state`` (the stem's, in every layout
    read here), or None where it holds none."""
    for tensor in state.values():
        if tensor.is_floating_point() and tensor.dim() in (4, 5):
            return int(tensor.shape[1])
    return None


def classifier_outputs(state: dict) -> Optional[int]:
    """How many classes the classifier of ``state`` (``fc`` or another project's name for it)
    has, or None for a backbone."""
    for name in CLASSIFIER_NAMES:
        weight = state.get(f"{name}.weight")
        if weight is not None and weight.dim() == 2:
            return int(weight.shape[0])
    return None


def _words(text: str) -> set[str]:
    """The model-like words of a layout's description ("resnet50/101/152" gives resnet50)."""
    words = set(re.findall(r"[a-z_][a-z0-9_]*", text.lower()))
    for stem, depths in re.findall(r"([a-z_]+)(\d+(?:/\d+)+)", text.lower()):
        words.update(stem + depth for depth in depths.split("/"))
    return words


def _yaml(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)

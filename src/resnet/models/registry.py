"""A registry of model builders: ``create_model(name)``, ``list_models(pattern)``, as in timm.

The builder modules register themselves when imported; ``resnet.models`` imports them all (as
timm's package does), so this module imports none of them.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional, TypeVar

from torch import nn

from resnet.checks import whole_number
from resnet.errors import ConfigError, UnknownModelError
from resnet.models.compat import recorded_kwargs

__all__ = ["register_model", "create_model", "list_models", "model_entry", "ModelEntry"]

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about a builder without calling it."""

    name: str
    builder: Callable[..., nn.Module]
    family: str  # "imagenet", "cifar", ...: decides the default input size
    default_input_size: int  # the side of the square input the model was designed for
    default_frames: Optional[int] = None  # a video net's clip length (its depth axis)

    def input_spatial(self, spatial_dims: int) -> tuple[int, ...]:
        """The spatial shape of the input it was designed for: its side in every dim, but a
        video net's clip of ``default_frames`` frames (16x112x112 for R3D-18)."""
        side = self.default_input_size
        if self.default_frames is not None and spatial_dims == 3:
            return (self.default_frames, side, side)
        return (side,) * spatial_dims


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    fn: Optional[Builder] = None,
    *,
    family: str = "imagenet",
    default_input_size: int = 224,
    default_frames: Optional[int] = None,
) -> Any:
    """Register a builder under its function name; usable as ``@register_model`` or with args."""

    def decorator(builder: Builder) -> Builder:
        _REGISTRY[builder.__name__] = ModelEntry(
            builder.__name__, builder, family, default_input_size, default_frames
        )
        return builder

    return decorator(fn) if fn is not None else decorator


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, in a natural order."""
    if not isinstance(pattern, str):
        raise ConfigError(f"pattern must be a string such as 'resnet*', got {pattern!r}")
    names = [name for name in _REGISTRY if fnmatch.fnmatch(name, pattern)]
    return sorted(names, key=_natural_key)


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name suggests the closest ones."""
    if not isinstance(name, str):
        raise UnknownModelError(f"a model name is a string such as 'resnet18', got {name!r}")
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see `resnet models` for the list"
        raise UnknownModelError(f"unknown model {name!r}: {hint}")
    return _REGISTRY[name]


def create_model(
    name: str,
    *,
    features_only: bool = False,
    out_indices: Optional[tuple[int, ...]] = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model, e.g. ``create_model("resnet20", num_classes=10, in_chans=1)``.

    With ``features_only=True`` the result returns the feature maps of the stages selected by
    ``out_indices`` (0-based stage indices, all stages by default) instead of logits.
    The model remembers ``model_name`` and ``model_kwargs`` so a checkpoint can rebuild it; a
    kwarg a checkpoint cannot record (not JSON, e.g. a norm constructor) raises ``ConfigError``.
    """
    entry = model_entry(name)
    _check_switches(name, {"features_only": features_only}, (create_model,))
    if kwargs.get("num_classes") == 0 and not isinstance(kwargs["num_classes"], bool):
        raise ConfigError(  # timm's headless model: here the same comes from the interface
            "num_classes=0 (timm's model without a classifier) is not how this zoo does it: "
            "for pooled features use model.forward_head(model.forward_features(x), "
            "pre_logits=True), for feature maps create_model(..., features_only=True)"
        )
    for key in ("num_classes", "in_chans"):  # every family takes them; 1.5 failed deep in torch
        if key in kwargs:  # as int: numpy integers are not JSON, and checkpoints record these
            kwargs[key] = whole_number(key, kwargs[key])
    _check_recordable(name, kwargs)
    try:
        model = entry.builder(**kwargs)
    except TypeError as error:
        raise ConfigError(f"bad argument for model {name!r}: {error}") from None
    _check_switches(name, kwargs, (entry.builder, type(model).__init__))
    model.model_name = name
    model.model_kwargs = {**kwargs, **recorded_kwargs(name, kwargs, model)}
    if features_only:
        from resnet.models.features import FeatureExtractor

        return FeatureExtractor(model, out_indices)
    if out_indices is not None:
        raise ConfigError("out_indices only makes sense with features_only=True")
    return model


def _check_switches(name: str, kwargs: dict[str, Any], callables: tuple) -> None:
    """Refuse a non-bool for an on/off option (a ``bool`` parameter of the builder or the model
    class): ``zero_init_residual="false"`` is a true string, and turned the option on."""
    switches = {
        key
        for function in callables
        for key, parameter in inspect.signature(function).parameters.items()
        if parameter.annotation in (bool, "bool")
    }
    for key in sorted(switches & set(kwargs)):
        if not isinstance(kwargs[key], bool):
            raise ConfigError(
                f"create_model({name!r}, {key}={kwargs[key]!r}): {key} is on or off; "
                "pass True or False (true or false in YAML)"
            )


def _check_recordable(name: str, kwargs: dict[str, Any]) -> None:
    for key, value in kwargs.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            hint = ' (e.g. norm_layer="group")' if key == "norm_layer" else ""
            raise ConfigError(
                f"create_model({name!r}, {key}={value!r}): a checkpoint could not record this "
                f"value, so the model could not be rebuilt; pass its string form{hint}"
            ) from None


def _natural_key(name: str) -> list[Any]:
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]

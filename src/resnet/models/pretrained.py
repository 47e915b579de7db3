"""Load weight files saved by torchvision, timm (ResNet, ResNetV2, legacy SENet, CLIP),
transformers, BiT, OpenAI's CLIP (and open_clip), MONAI, MedicalNet, the public CIFAR
reproduction, the paper's own Caffe models, Keras, Detectron, PaddleClas, MXNet (Gluon and
GluonCV), the ONNX model zoo, self-supervised methods (MoCo, SimSiam, DINO, SwAV, Barlow Twins,
VICReg), RadImageNet (a ResNet saved as a Sequential of its children) or this package into a
model of the zoo.

No download happens here: the user points at a file (``.pth``/``.pt``/``.th``/``.bin``,
``.safetensors``, BiT's ``.npz``, MSRA's ``.caffemodel``, Keras's ``.h5``, Detectron's
``.pkl``, PaddleClas's ``.pdparams``, MXNet's ``.params`` or the ONNX zoo's ``.onnx``) or
passes a state_dict. Files are read with ``weights_only=True``, as safetensors, or by readers
of arrays only (``weight_files.py``), so a weight file can never run code.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

import torch
from torch import Tensor, nn

from resnet.errors import ConfigError, WeightsError
from resnet.models.layouts import (
    Assumption,
    check_assumptions,
    from_other_layout,
    input_conversion,
    torchvision_net,
)
from resnet.models.ssl_names import from_self_supervised, pick_network
from resnet.models.weight_files import read_weight_file, weights_path

__all__ = [
    "load_weights",
    "read_state_dict",
    "read_weights",
    "fit_weights",
    "ReadWeights",
    "check_finite",
    "first_non_finite",
    "LoadReport",
    "CLASSIFIER_NAMES",
]

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema")
_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
# Other projects' names for the classifier, mapped onto ours (``fc``): the CIFAR reproduction's
# ``linear``, timm's ``head.fc`` and the ``classifier`` of many others.
CLASSIFIER_NAMES = ("fc", "linear", "head.fc", "classifier")
_STEM_KEYS = ("conv1.weight", "conv1.0.weight", "stem.conv.weight")
Source = Union[str, os.PathLike, Mapping[str, Any]]


@dataclass
class LoadReport:
    """What ``load_weights`` had to change to make the file fit the model."""

    adapted_conv1: bool = False  # the stem was converted to the model's input channels
    dropped_classifier: bool = False  # the file's classifier had another number of classes
    backbone_only: bool = False  # the file has no classifier: the model keeps its fresh one
    renamed_classifier: str = ""  # the file's name for the classifier, when not ``fc``
    converted_input: str = ""  # how the file's input convention was folded into the stem
    stripped_prefix: str = ""  # the wrapper's attribute name every key began with ("model.")
    origin: str = ""  # the network taken out of a self-supervised method's checkpoint, if one
    skipped: list[str] = field(default_factory=list)
    loaded: int = 0  # tensors copied into the model

    def describe(self) -> str:
        """One line saying what was loaded and what was changed to fit, e.g. for a run's log:
        whether the classifier is the file's or a new one is what a fine-tuner needs to know."""
        changes = [self.origin] if self.origin else []
        if self.stripped_prefix:
            changes.append(f"the keys' prefix {self.stripped_prefix!r} dropped")
        if self.renamed_classifier:
            changes.append(f"its classifier {self.renamed_classifier!r} read as fc")
        if self.converted_input:
            changes.append(self.converted_input)
        if self.adapted_conv1:
            changes.append("conv1 adapted to the input channels")
        if self.dropped_classifier:
            changes.append("its classifier (another number of classes) left out: fc is new")
        elif self.backbone_only:
            changes.append("it has no classifier: fc is new")
        elif self.skipped:
            changes.append("its classifier not used (features only)")
        else:
            changes.append("fc included")
        return f"{self.loaded} tensors loaded; " + ", ".join(changes)


def read_state_dict(source: Source) -> dict[str, Tensor]:
    """A flat ``{name: tensor}`` mapping from a weight file or a loaded mapping.

    Unwraps training checkpoints (``state_dict``, ``model``, ``model_state_dict``,
    ``state_dict_ema``) and the ``module.``/``_orig_mod.`` prefixes of DDP and torch.compile,
    takes the trained network out of a self-supervised method's checkpoint (``ssl_names.py``:
    MoCo's query encoder, DINO's teacher backbone ...), and renames the layouts of
    transformers, timm's ResNetV2, BiT, SENet and CLIP to ours
    (``resnet.models.layouts``).
    """
    return read_weights(source).state


class ReadWeights(NamedTuple):
    """A weight file as ``load_weights`` sees it."""

    state: dict[str, Tensor]  # in our names (``read_state_dict``)
    assumptions: list[Assumption]  # the model options its tensors assume (``layouts.py``)
    converted: str  # how its input convention was folded into the stem ("" if it was not)
    label: str  # what its messages call it: the path, or "the given state_dict"
    origin: str = ""  # which network of a self-supervised checkpoint it is ("" if not one)


def read_weights(source: Source) -> ReadWeights:
    """``read_state_dict``'s state, with what its layout says of the model it needs."""
    if not isinstance(source, (str, os.PathLike, Mapping)):
        raise WeightsError(
            f"weights come from a file path or a state_dict mapping, got {type(source).__name__}"
        )
    label = _label(source)
    path = None if isinstance(source, Mapping) else weights_path(Path(source))
    state = source if path is None else read_weight_file(path)
    picked, left_out = "", ""
    if isinstance(state, Mapping):
        state, picked, left_out = pick_network(state)
    for key in _WRAPPER_KEYS:
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(
            f"{label}: holds no state_dict of tensors; save model.state_dict() instead"
        )
    state = dict(state)
    for prefix in _PREFIXES * 2:  # either wrapper may wrap the other
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    state, origin = from_self_supervised(state, left_out)
    if picked and not origin:
        origin = f"{picked}; {left_out} left out"
    converted = input_conversion(state)
    state, assumptions = from_other_layout(state, path, label)
    if origin and not assumptions:  # every method here trains a torchvision ResNet
        what = f"{origin} (a torchvision ResNet: load it into the model of its depth and width)"
        assumptions = torchvision_net(what)
    check_finite(state, label)
    return ReadWeights(state, assumptions, converted, label, origin)


def first_non_finite(state: Mapping[str, Tensor]) -> Optional[str]:
    """The name of the first floating-point tensor of ``state`` holding NaN or inf, else None."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def check_finite(state: Mapping[str, Tensor], label: str) -> None:
    """``WeightsError`` naming the first tensor of ``state`` that holds NaN or inf: such weights
    load without complaint and then make every output NaN (every prediction the same class)."""
    name = first_non_finite(state)
    if name is not None:
        raise WeightsError(
            f"{label}: {name} holds NaN or infinite values (a corrupt file, or weights saved "
            "after training diverged); use another checkpoint or weight file"
        )


def _label(source: Source) -> str:
    return "the given state_dict" if isinstance(source, Mapping) else str(source)


def load_weights(model: nn.Module, source: Union[Source, ReadWeights]) -> LoadReport:
    """Load a weight file (or a state_dict, or what ``read_weights`` read of either) into
    ``model``, adapting what can be adapted.

    - training checkpoints and DDP/compile prefixes are unwrapped (``read_state_dict``), and so
      is the attribute a training wrapper kept the network in (a Lightning module's
      ``model.conv1.weight``) when every key starts with it and none fits the model without it;
    - the classifier may be named ``linear``, ``head.fc`` or ``classifier`` in the file;
    - BatchNorm's ``num_batches_tracked`` counters may be missing (older PyTorch files);
    - ``conv1`` with another number of input channels: for 1 channel the RGB filters are summed
      (a grey image is R = G = B); otherwise they are repeated and rescaled by ``3 / in_chans`` so
      the response to a uniform input keeps its size;
    - a classifier of another size is dropped, and a file without one (a backbone, e.g.
      MedicalNet) loads too: the model keeps its own, fresh classifier either way;
    - anything else that does not fit raises ``WeightsError`` listing the keys.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"load_weights takes the model first, got {type(model).__name__}: "
            "load_weights(create_model('resnet18'), 'resnet18.pth')"
        )
    target = model.model if hasattr(model, "out_indices") and hasattr(model, "model") else model
    read = source if isinstance(source, ReadWeights) else read_weights(source)
    state, report = fit_weights(target, read, features_only=target is not model)
    # Every key is checked; only counters (and the kept classifier) may be missing here.
    target.load_state_dict(state, strict=False)
    report.loaded = len(state)
    return report


def fit_weights(
    model: nn.Module, read: ReadWeights, *, features_only: bool = False
) -> tuple[dict[str, Tensor], LoadReport]:
    """``read``'s state made to fit ``model`` (what ``load_weights`` loads), and what was
    changed to fit; ``WeightsError`` where it cannot. Nothing is copied into ``model``, so it
    may live on the meta device (``identify.py`` tries a file on every model so)."""
    state, assumptions, converted, label, origin = read
    check_assumptions(assumptions, model, label)
    own = model.state_dict()
    report = LoadReport(converted_input=converted, origin=origin)
    state = _strip_wrapper_name(state, own, report)
    state = _rename_classifier(state, own, report)

    stem_key = next((k for k in _STEM_KEYS if k in own), None)
    if stem_key in state and _is_other_channel_count(state[stem_key], own[stem_key]):
        state[stem_key] = _adapt_stem(state[stem_key], own[stem_key].shape[1], label)
        report.adapted_conv1 = True

    # BatchNorm's step counter means nothing to a frozen or absent BN: drop it where unused.
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked") or k in own}
    classifier_keys = [k for k in ("fc.weight", "fc.bias") if k in own]
    if features_only:  # a features_only model has no use for a classifier
        report.skipped = [k for k in state if k.startswith("fc.")]
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    elif any(k in state and state[k].shape != own[k].shape for k in classifier_keys):
        state = {k: v for k, v in state.items() if k not in classifier_keys}
        report.dropped_classifier = True
    elif classifier_keys and not any(k in state for k in classifier_keys):
        report.backbone_only = True

    _check_attention_grid(state, own, label)
    try:
        _check_fit(state, own, label, model, ignore_missing=classifier_keys)
    except WeightsError as error:  # a known layout also says which model it loads into
        if not assumptions:
            raise
        raise WeightsError(f"{error}; the file is {assumptions[0].what}") from None
    return state, report


def _strip_wrapper_name(
    state: dict[str, Tensor], own: Mapping[str, Tensor], report: LoadReport
) -> dict[str, Tensor]:
    """Drop the one first name all keys but the classifier's share (a Lightning module's
    ``model.``, OpenMMLab's ``backbone.`` beside its ``head.fc``) if no key fits ``own`` with it
    and some do without it; whether every key then fits is ``_check_fit``'s to say."""
    body = [key for key in state if not key.startswith(tuple(f"{n}." for n in CLASSIFIER_NAMES))]
    if not body or any(key in own for key in state) or not all("." in key for key in body):
        return state
    names = {key.split(".", 1)[0] for key in body}
    if len(names) != 1:
        return state
    prefix = f"{names.pop()}."
    stripped = {key.removeprefix(prefix): value for key, value in state.items()}
    if not any(key in own for key in stripped):
        return state
    report.stripped_prefix = prefix
    return stripped


def _rename_classifier(
    state: dict[str, Tensor], own: dict[str, Tensor], report: LoadReport
) -> dict[str, Tensor]:
    if "fc.weight" not in own or "fc.weight" in state:
        return state
    for name in CLASSIFIER_NAMES[1:]:
        if f"{name}.weight" in state:
            report.renamed_classifier = name
            prefix = f"{name}."
            return {
                f"fc.{k[len(prefix) :]}" if k.startswith(prefix) else k: v for k, v in state.items()
            }
    return state


def _check_attention_grid(state: dict[str, Tensor], own: dict[str, Tensor], label: str) -> None:
    """A CLIP attention pool learned on another map size (RN50x4's 9x9 against RN50's 7x7)."""
    key = "global_pool.pos_embed"
    if key not in state or key not in own or state[key].shape == own[key].shape:
        return
    theirs, ours = (math.isqrt(s[key].shape[0] - 1) for s in (state, own))
    if state[key].shape[1] == own[key].shape[1] and theirs * theirs + 1 == state[key].shape[0]:
        raise WeightsError(
            f"{label}: its attention pool's positions were learned on a {theirs}x{theirs} map "
            f"({32 * theirs}-pixel images), the model's on {ours}x{ours}: build the model with "
            f"attention_grid={theirs}"
        )


def _check_fit(
    state: dict[str, Tensor],
    own: dict[str, Tensor],
    label: str,
    target: nn.Module,
    ignore_missing: list[str],
) -> None:
    """Raise one ``WeightsError`` naming every key that does not fit, if any."""
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    missing = [
        k
        for k in own
        if k not in state and k not in ignore_missing and not k.endswith("num_batches_tracked")
    ]
    unexpected = [k for k in state if k not in own]
    if not (mismatched or missing or unexpected):
        return
    parts = []
    for name, keys in (
        ("shape mismatch", mismatched),
        ("missing", missing),
        ("unexpected", unexpected),
    ):
        if keys:
            shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
            parts.append(f"{name}: {shown}")
    if any(state[k].dim() != own[k].dim() for k in state if k in own):
        parts.append("tensor ranks differ (weights of another spatial_dims?)")
    name = getattr(target, "model_name", type(target).__name__)
    raise WeightsError(
        f"{label} does not fit model {name}: {'; '.join(parts)}; "
        "check that the file was saved from the same architecture"
    )


def _is_other_channel_count(weight: Tensor, own: Tensor) -> bool:
    # Only a conv weight of the same rank and kernel, with other input channels, is adapted.
    same_rank = weight.dim() == own.dim() >= 3
    return (
        same_rank
        and weight.shape[0] == own.shape[0]
        and weight.shape[2:] == own.shape[2:]
        and (weight.shape[1] != own.shape[1])
    )


def _adapt_stem(weight: Tensor, in_chans: int, label: str) -> Tensor:
    out_channels, file_chans = weight.shape[:2]
    if file_chans != 3:
        raise WeightsError(
            f"{label}: conv1 has {file_chans} input channels; only 3-channel (RGB) stems are "
            "adapted"
        )
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_chans // 3)  # ceil
    return weight.repeat(1, repeats, *([1] * (weight.dim() - 2)))[:, :in_chans] * (3 / in_chans)

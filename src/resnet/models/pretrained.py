"""Load weight files saved by torchvision, timm or this package into a model of the zoo.

No download happens here: the user points at a file (``.pth``/``.pt``/``.bin`` or
``.safetensors``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from resnet.errors import WeightsError

__all__ = ["load_weights", "read_state_dict", "LoadReport"]

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema")
_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile


@dataclass
class LoadReport:
    """What ``load_weights`` had to change to make the file fit the model."""

    adapted_conv1: bool = False  # the stem was converted to the model's input channels
    dropped_classifier: bool = False  # the file's classifier had another number of classes
    skipped: list[str] = field(default_factory=list)


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a flat ``{name: tensor}`` mapping from a weight file; unwrap training checkpoints."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"{path}: weight file not found; pass the path of a .pth or .safetensors file"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            # weights_only: a weight file must never be able to run code on load.
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # every reader has its own exception types
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise WeightsError(
            f"{path}: not a readable weight file ({first_line[:160]}); "
            "expected a state_dict saved with torch.save or safetensors"
        ) from None
    for key in _WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(
            f"{path}: holds no state_dict of tensors; save model.state_dict() instead"
        )
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_weights(model: nn.Module, path: str | os.PathLike) -> LoadReport:
    """Load ``path`` into ``model``, adapting the stem and the classifier where they differ.

    - ``conv1`` with another number of input channels: for 1 channel the RGB filters are summed
      (a grey image is R = G = B); otherwise they are repeated and rescaled by ``3 / in_chans`` so
      the response to a uniform input keeps its size.
    - a classifier (``fc``) of another size is dropped and the model keeps its own, fresh one.
    - anything else that does not match raises ``WeightsError`` listing the keys.
    """
    target = model.model if hasattr(model, "out_indices") and hasattr(model, "model") else model
    state = dict(read_state_dict(path))
    own = target.state_dict()
    report = LoadReport()

    stem_key = _find_stem_key(own)
    if stem_key and stem_key in state and state[stem_key].shape != own[stem_key].shape:
        state[stem_key] = _adapt_stem(state[stem_key], own[stem_key].shape[1], path)
        report.adapted_conv1 = True

    # BatchNorm's step counter means nothing to a frozen or absent BN: drop it where unused.
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked") or k in own}
    classifier_keys = [k for k in ("fc.weight", "fc.bias") if k in own]
    if target is not model:  # a features_only model has no use for a classifier
        report.skipped = [k for k in state if k.startswith("fc.")]
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    elif any(k in state and state[k].shape != own[k].shape for k in classifier_keys):
        state = {k: v for k, v in state.items() if k not in classifier_keys}
        report.dropped_classifier = True

    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    missing = [k for k in own if k not in state]
    if report.dropped_classifier or target is not model:
        missing = [k for k in missing if k not in classifier_keys]
    unexpected = [k for k in state if k not in own]
    if mismatched or missing or unexpected:
        parts = []
        for label, keys in (
            ("shape mismatch", mismatched),
            ("missing", missing),
            ("unexpected", unexpected),
        ):
            if keys:
                shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
                parts.append(f"{label}: {shown}")
        name = getattr(target, "model_name", type(target).__name__)
        raise WeightsError(
            f"{path} does not fit model {name}: {'; '.join(parts)}; "
            "check that the file was saved from the same architecture"
        )
    target.load_state_dict(state, strict=False)
    return report


def _find_stem_key(state: dict[str, Tensor]) -> str | None:
    for key in ("conv1.weight", "stem.conv.weight"):
        if key in state:
            return key
    return None


def _adapt_stem(weight: Tensor, in_chans: int, path: str | os.PathLike) -> Tensor:
    out_channels, file_chans = weight.shape[:2]
    if file_chans != 3:
        raise WeightsError(
            f"{path}: conv1 has {file_chans} input channels; only 3-channel (RGB) stems are adapted"
        )
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_chans // 3)  # ceil
    return weight.repeat(1, repeats, *([1] * (weight.dim() - 2)))[:, :in_chans] * (3 / in_chans)

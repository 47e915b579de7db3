"""Self-describing checkpoints: weights in ``stem.safetensors``, everything else in ``stem.json``.

As in nanoGPT, a checkpoint stores the model's constructor arguments, so
``create_model_from_checkpoint(path)`` rebuilds the network from the files alone. A run directory
holds ``best`` and ``last``; ``last.state.pt`` adds what resuming needs (optimizer, EMA, RNG).
Every file is written atomically, so a run killed at any moment leaves the previous checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from resnet.errors import ConfigError, DataError, WeightsError
from resnet.io import atomic_save_json, atomic_write

__all__ = [
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "create_model_from_checkpoint",
    "resolve_checkpoint",
    "read_checkpoint_info",
    "checkpoint_assumptions",
    "weight_file",
    "unwrap_model",
]

FORMAT_VERSION = 1
_INFO_KEYS = ("format_version", "model_name", "model_kwargs", "epoch", "step", "metrics")
# What to do with a weight file given where a run checkpoint is needed.
_USE_WEIGHTS = (
    "start a run from it with `resnet train --pretrained FILE`, or make a classifier's file a "
    "checkpoint with `resnet import FILE --model NAME --out DIR`, then pass that run"
)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain network inside DistributedDataParallel and/or ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module  # DistributedDataParallel
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod  # torch.compile
        else:
            return model


def _plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share storage (tied weights) or are non-contiguous views;
    # an owned, contiguous CPU copy of each tensor satisfies it.
    return {
        name: tensor.detach().to("cpu", copy=True).contiguous()
        for name, tensor in unwrap_model(model).state_dict().items()
    }


def save_checkpoint(
    stem: str | os.PathLike,
    model: nn.Module,
    *,
    data_meta: Any,
    epoch: int,
    step: int,
    metrics: dict,
    extra_state: Optional[dict] = None,
    config: Optional[dict] = None,
) -> Path:
    """Write ``stem.safetensors`` + ``stem.json`` (and ``stem.state.pt`` with ``extra_state``).

    ``data_meta`` is a ``DatasetMeta`` (or its ``to_dict()``); ``config`` (optional) is the
    resolved training config, kept so ``evaluate`` can find the dataset again. The state file
    also holds the raw weights, so a resume point is one atomic file that cannot be half-updated.
    Returns the ``.safetensors`` path.
    """
    from safetensors.torch import save as safetensors_bytes

    stem = Path(stem)
    network = unwrap_model(model)
    name = getattr(network, "model_name", None)
    if name is None:
        raise ConfigError(
            f"cannot checkpoint a {type(network).__name__}: it has no model_name; "
            "build it with resnet.create_model"
        )
    if data_meta is not None and hasattr(data_meta, "to_dict"):
        data_meta = data_meta.to_dict()
    weights = _plain_state_dict(network)
    if extra_state is not None:
        with atomic_write(_suffixed(stem, ".state.pt")) as handle:
            # extra_state may carry its own "model" (the raw weights when these are an EMA).
            torch.save({"model": weights, **extra_state, "epoch": epoch, "step": step}, handle)
    with atomic_write(_suffixed(stem, ".safetensors")) as handle:
        handle.write(safetensors_bytes(weights, metadata={"format": "pt"}))
    info = {
        "format_version": FORMAT_VERSION,
        "model_name": name,
        "model_kwargs": dict(getattr(network, "model_kwargs", {})),
        "data_meta": data_meta,
        "epoch": int(epoch),
        "step": int(step),
        "metrics": metrics,
    }
    if config is not None:
        info["train_config"] = config
    atomic_save_json(_suffixed(stem, ".json"), info)
    return _suffixed(stem, ".safetensors")


def _suffixed(stem: Path, suffix: str) -> Path:
    return stem.parent / (stem.name + suffix)


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The stem of a checkpoint given a run dir (``best``, else ``last``), a file or a stem."""
    path = Path(path)
    if path.is_dir():
        for name in ("best", "last"):
            if _suffixed(path / name, ".json").is_file():
                return path / name
        raise WeightsError(
            f"{path}: run directory holds no best.json/last.json checkpoint; "
            "pass a finished run directory or a .safetensors file"
        )
    given = path
    for suffix in (".safetensors", ".json", ".state.pt"):
        if path.name.endswith(suffix):
            path = path.parent / path.name[: -len(suffix)]
            break
    if not _suffixed(path, ".json").is_file() or not _suffixed(path, ".safetensors").is_file():
        if given.suffix == ".safetensors" and given.is_file():  # a weight file of its own
            raise WeightsError(
                f"{given}: a weight file without {path.name}.json beside it, so not a run "
                f"checkpoint; {_USE_WEIGHTS}"
            )
        if path.is_file():  # an existing file of another kind: say which, not "not found"
            raise WeightsError(f"{path}: {_other_kind(path)}")
        raise WeightsError(
            f"{path}: checkpoint not found (need {path.name}.safetensors and {path.name}.json); "
            "pass a run directory, a .safetensors/.json file or their common stem"
        )
    return path


def _other_kind(path: Path) -> str:
    """What a file given as a checkpoint is, and where it can be used instead."""
    from resnet.models.weight_files import WEIGHT_SUFFIXES

    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return (
            "an exported ONNX model, which `resnet eval` and `resnet predict` run; this command "
            "needs the run's checkpoint (its folder or best.safetensors)"
        )
    if suffix == ".pt2" or path.name.lower().endswith(".torchscript.pt"):
        return (
            "an exported pt2/TorchScript model, which `resnet eval` and `resnet predict` run; "
            "this command needs the run's checkpoint (its folder or best.safetensors)"
        )
    if suffix in WEIGHT_SUFFIXES:
        return f"a weight file, not a run checkpoint; {_USE_WEIGHTS}"
    return "not a checkpoint; pass a run directory, a .safetensors/.json file or their stem"


def checkpoint_assumptions(path: str | os.PathLike) -> list:
    """What the weights of this package's checkpoint at ``path`` assume of a model
    (``resnet.models.layouts``): a resnet50 run built with ``stride_in_1x1=True`` fits a
    default resnet50 key for key. Empty for a weight file without our ``.json`` beside it."""
    from resnet.models import create_model, legacy_model_kwargs
    from resnet.models.layouts import assumptions_of

    try:
        info = read_checkpoint_info(path)
    except (WeightsError, FileNotFoundError):
        return []
    kwargs = legacy_model_kwargs(info["model_name"], info["model_kwargs"], info["format_version"])
    try:
        with torch.device("meta"):
            model = create_model(info["model_name"], **kwargs)
    except ConfigError:  # an unregistered model: load_weights says what does not fit
        return []
    options = {
        k: v for k, v in info["model_kwargs"].items() if k not in ("in_chans", "num_classes")
    }
    built = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "its defaults"
    return assumptions_of(model, f"a checkpoint of {info['model_name']} ({built})")


def weight_file(path: str | os.PathLike) -> Path:
    """A weight file path; a run directory or checkpoint ``.json`` means its ``.safetensors``
    (a transformers or timm hub folder stays a folder: ``load_weights`` reads it)."""
    from resnet.models.hf_names import saved_weights

    candidate = Path(path)
    if candidate.is_dir() and saved_weights(candidate) is not None:
        return candidate
    if candidate.is_dir() or candidate.suffix == ".json":
        return _suffixed(resolve_checkpoint(candidate), ".safetensors")
    return candidate


def read_checkpoint_info(path: str | os.PathLike) -> dict:
    """The ``.json`` side of a checkpoint, checked for the keys a rebuild needs."""
    json_path = _suffixed(resolve_checkpoint(path), ".json")
    try:
        info = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(
            f"{json_path}: not a readable checkpoint description ({error}); "
            "re-save the checkpoint or point at another run"
        ) from None
    missing = [key for key in _INFO_KEYS if not isinstance(info, dict) or key not in info]
    if missing:
        raise WeightsError(
            f"{json_path}: checkpoint description lacks {', '.join(missing)}; "
            "it was not written by resnet's save_checkpoint"
        )
    _check_info_types(info, json_path)
    if info["format_version"] > FORMAT_VERSION:
        raise WeightsError(
            f"{json_path}: checkpoint format {info['format_version']} is newer than this "
            f"package reads ({FORMAT_VERSION}); upgrade resnet"
        )
    return info


_INFO_TYPES = {
    "format_version": int,
    "model_name": str,
    "model_kwargs": dict,
    "epoch": int,
    "step": int,
    "metrics": dict,
}


def _check_info_types(info: dict, json_path: Path) -> None:
    """Every field of an (editable) checkpoint description has the type a rebuild needs."""
    for key, kind in _INFO_TYPES.items():
        value = info[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise WeightsError(
                f"{json_path}: {key} must be {kind.__name__}, got {value!r:.60}; the file was "
                "edited or damaged, re-save the checkpoint"
            )
    if info.get("data_meta") is not None:
        from resnet.data import DatasetMeta

        try:
            DatasetMeta.from_dict(info["data_meta"])
        except DataError as error:
            raise WeightsError(f"{json_path}: {error}") from None
    if info.get("train_config") is not None and not isinstance(info["train_config"], dict):
        raise WeightsError(f"{json_path}: train_config must be a mapping; re-save the checkpoint")


def load_checkpoint(
    path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint and load its weights: ``(model, info)``.

    ``path`` may be a run directory, the ``.safetensors`` or ``.json`` file, or their stem.
    The model is built with ``resnet.models.create_model(info["model_name"],
    **info["model_kwargs"])``, so any registered model (2D or 3D) works.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from resnet.models import check_finite, create_model, legacy_model_kwargs

    stem = resolve_checkpoint(path)
    info = read_checkpoint_info(stem)
    weights_path = _suffixed(stem, ".safetensors")
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise WeightsError(
            f"{weights_path}: corrupt or truncated weight file ({str(error)[:120]}); "
            "use the other checkpoint of the run (best/last) or retrain"
        ) from None
    check_finite(state, str(weights_path))
    try:
        kwargs = legacy_model_kwargs(
            info["model_name"], info["model_kwargs"], info["format_version"]
        )
        model = create_model(info["model_name"], **kwargs)
    except ConfigError as error:
        raise WeightsError(
            f"{stem}.json: cannot rebuild model {info['model_name']!r} ({error}); "
            "import the module that registers it or fix model_kwargs"
        ) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise WeightsError(
            f"{weights_path}: weights do not fit {info['model_name']} "
            f"({' '.join(first[1:2]).strip()[:160]}); the .json and .safetensors are from "
            "different models"
        ) from None
    _check_class_count(model, info, stem)
    return model.to(device), info


def _check_class_count(model: nn.Module, info: dict, stem: Path) -> None:
    """The class names must name every output of the network, no more, no fewer."""
    head = getattr(model, "fc", None)
    names = (info.get("data_meta") or {}).get("class_names")
    if isinstance(head, nn.Linear) and names is not None and len(names) != head.out_features:
        raise WeightsError(
            f"{stem}.json: {len(names)} class names for a network with {head.out_features} "
            "outputs; the description does not belong to these weights"
        )


def create_model_from_checkpoint(
    path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> nn.Module:
    """The network of a checkpoint with its weights, in eval mode."""
    model, _ = load_checkpoint(path, device=device)
    return model.eval()

"""Export a trained network to ONNX, TorchScript or a ``torch.export`` program (.pt2).

Every exported file carries the preprocessing it expects (class names, channels, input size,
mean, std), so a deployment needs nothing but the file: ONNX in ``metadata_props``, TorchScript
and pt2 in an extra file ``resnet_meta.json`` inside the archive. Each export is run once against
the PyTorch model before it is written (atomically); a difference above ``atol + rtol *
max|output|`` fails it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import logging.handlers
import math
import numbers
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from resnet.checks import is_whole, switches
from resnet.errors import ConfigError, ResnetError
from resnet.io import atomic_write
from resnet.models.inputs import input_spec

__all__ = [
    "export_model",
    "ExportError",
    "FORMATS",
    "output_path",
    "META_FILE",
    "read_export_metadata",
    "load_exported_program",
    "load_export_source",
    "train_config_of",
    "export_metadata",
    "export_bytes",
    "check_opset",
    "MIN_OPSET",
    "write_metadata",
    "decode_metadata",
    "require_onnx",
    "quiet_export",
    "first_line",
]

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "pt2": ".pt2"}
_ARTICLED = {"onnx": "an ONNX", "torchscript": "a TorchScript", "pt2": "a pt2"}
# What a written file's name must end in, by format: readers tell the formats apart by suffix.
OUT_SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".pth"), "pt2": (".pt2",)}
META_FILE = "resnet_meta.json"  # the extra file of TorchScript and pt2 archives
# The oldest ONNX opset the zoo exports to: the CIFAR nets' option-A shortcut is a strided slice,
# which ONNX has since opset 10 (older ones failed after printing the whole traced graph).
MIN_OPSET = 10
INPUT_NAME, OUTPUT_NAME = "input", "logits"


class ExportError(ResnetError):
    """An exported model whose outputs differ from PyTorch's, or an export that failed."""


def export_model(
    checkpoint_or_model: Union[str, os.PathLike, nn.Module],
    fmt: str,
    out_path: Union[str, os.PathLike, None] = None,
    *,
    data_meta: Any = None,
    atol: float = 1e-4,
    opset: int = 17,
    fold_bn: bool = True,
    rtol: float = 1e-5,
) -> dict[str, Any]:
    """Export a checkpoint (run dir, ``.safetensors``/``.json`` or stem) or a model; verify it.

    ``fmt`` is ``"onnx"``, ``"torchscript"`` or ``"pt2"``. The batch dimension stays dynamic.
    The exported model is compared with the original on a batch of another size (ONNX through
    onnxruntime); ``ExportError`` if the max abs difference exceeds ``atol + rtol * max|output|``
    (float32 rounds logits of 7,500 by ~1e-3), and then no file is written. Returns a report:
    ``{"format", "path", "bytes", "max_abs_diff", "atol", "rtol", "limit", "checked_with",
    "metadata"}``. ``data_meta`` (a ``DatasetMeta`` or its dict) describes the
    inputs of a bare model; a checkpoint brings its own.
    """
    switches(fold_bn=fold_bn)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    for name, value in (("atol", atol), ("rtol", rtol)):  # NaN passed every check
        if not (isinstance(value, numbers.Real) and 0 <= value < math.inf):
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    check_opset(opset)
    out = output_path(out_path, fmt)  # refused before the checkpoint loads
    model, meta, source = load_export_source(checkpoint_or_model, data_meta)
    metadata = export_metadata(model, meta, fmt, train_config_of(source).get("dataset"))
    out = out or _default_path(source, model, fmt)
    example = _example_input(metadata["input_shape"], batch=2, seed=0)
    check = _example_input(metadata["input_shape"], batch=3, seed=1)
    with torch.no_grad():
        expected = model(check)

    data, got, checked_with = export_bytes(
        model, fmt, example, check, metadata, opset, fold_bn=fold_bn
    )
    diff = (torch.as_tensor(got).float() - expected.float()).abs().max().item()
    scale = expected.float().abs().max().item()
    limit = atol + rtol * scale
    if not diff <= limit:  # also catches NaN
        raise ExportError(
            f"{fmt} export of {metadata['model_name']} differs from PyTorch by {diff:.3g} "
            f"(> {limit:.3g}: atol {atol:g} + rtol {rtol:g} x max |output| {scale:.3g}) on a "
            "check batch; nothing written. Try fold_bn=False or another opset"
        )
    with atomic_write(out) as handle:
        handle.write(data)
    return {
        "format": fmt,
        "path": str(out),
        "bytes": len(data),
        "max_abs_diff": diff,
        "atol": atol,
        "rtol": rtol,
        "limit": limit,
        "checked_with": checked_with,
        "metadata": metadata,
    }


def read_export_metadata(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """The metadata an ``export_model`` file carries, whatever its format."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        return decode_metadata({p.key: p.value for p in proto.metadata_props})
    return load_exported_program(path)[1]


def load_exported_program(path: Union[str, os.PathLike]) -> tuple[Any, dict[str, Any]]:
    """A TorchScript or pt2 file of ``export_model``: the loaded program (a pt2 file's
    ``.module()``) and its metadata (``{}`` when the file carries none)."""
    path, extra = Path(path), {META_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice is torch's
        if path.suffix.lower() == ".pt2":
            program = _load_pt2(path, extra)
        else:
            program = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return program, json.loads(extra[META_FILE] or "{}")


def _load_pt2(path: Path, extra: dict[str, str]) -> Any:
    """``torch.export.load(path).module()``. torch logs a broken archive's error with its
    traceback at WARNING and then raises "check the warnings above": the log is held back and
    its error is raised (RuntimeError) in that message's place."""
    logger, kept = logging.getLogger("torch.export"), logging.handlers.BufferingHandler(100)
    handlers, propagate = logger.handlers, logger.propagate  # torch gives it its own handler
    logger.handlers, logger.propagate = [kept], False
    try:
        return torch.export.load(str(path), extra_files=extra).module()
    except Exception as error:
        causes = [r.exc_info[1] for r in kept.buffer if r.exc_info and r.exc_info[1]]
        if causes:  # its first sentence (miniz's errors run on for four more), less the C++ site
            text = re.sub(r"^\[enforce fail at [^\]]*\][\s.]*", "", str(causes[0]).strip())
            raise RuntimeError(text.split(". ")[0]) from error
        raise
    finally:
        logger.handlers, logger.propagate = handlers, propagate


def load_export_source(
    source: Any, data_meta: Any
) -> tuple[nn.Module, Optional[dict], Optional[Path]]:
    if isinstance(source, nn.Module):
        meta = data_meta.to_dict() if hasattr(data_meta, "to_dict") else data_meta
        return source.eval(), meta, None
    from resnet.engine.checkpoint import load_checkpoint, resolve_checkpoint

    model, info = load_checkpoint(source)
    meta = info.get("data_meta") or None
    if data_meta is not None:
        meta = data_meta.to_dict() if hasattr(data_meta, "to_dict") else data_meta
    return model.eval(), meta, resolve_checkpoint(source)


def train_config_of(source: Optional[Path]) -> dict[str, Any]:
    if source is None:
        return {}
    from resnet.engine.checkpoint import read_checkpoint_info

    return read_checkpoint_info(source).get("train_config") or {}


def export_metadata(
    model: nn.Module, meta: Optional[dict], fmt: str, dataset: Optional[str] = None
) -> dict[str, Any]:
    from resnet import __version__

    # The first convolution, wherever it sits (a deep stem's conv1 is a Sequential).
    channels, spatial_dims = input_spec(model) or (3, 2)
    name = getattr(model, "model_name", type(model).__name__)
    if meta is not None:
        image_size = list(meta["image_size"])
        if meta["channels"] != channels or len(image_size) != spatial_dims:
            raise ConfigError(
                f"data_meta describes {meta['channels']}-channel {tuple(image_size)} inputs but "
                f"{name} takes {channels} channels in {spatial_dims} dims; pass matching data_meta"
            )
        head = getattr(model, "fc", None)
        classes = len(meta["class_names"])
        if isinstance(head, nn.Linear) and classes != head.out_features:
            raise ConfigError(
                f"data_meta names {classes} classes but {name} has {head.out_features} outputs; "
                "pass the data_meta of the dataset the model was trained on"
            )
    else:
        from resnet.models import model_entry

        known = hasattr(model, "model_name")
        image_size = (
            list(model_entry(name).input_spatial(spatial_dims)) if known else [224] * spatial_dims
        )
    return {
        "format": fmt,
        "resnet_version": __version__,
        "model_name": name,
        "model_kwargs": dict(getattr(model, "model_kwargs", {})),
        "dataset": dataset or (meta["name"] if meta else None),  # what `resnet eval` loads
        "class_names": meta["class_names"] if meta else None,
        "channels": channels,
        "image_size": image_size,
        "mean": meta["mean"] if meta else None,
        "std": meta["std"] if meta else None,
        "input_shape": [-1, channels, *image_size],  # -1: any batch size
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
    }


def check_opset(opset: int) -> None:
    """Refuse an ONNX opset older than ``MIN_OPSET`` (or not a whole number) before any work."""
    if not is_whole(opset) or opset < MIN_OPSET:
        raise ConfigError(
            f"opset {opset!r} is not supported: use {MIN_OPSET} or newer (the default is 17)"
        )


def output_path(out_path: Union[str, os.PathLike, None], fmt: str) -> Optional[Path]:
    """``out_path`` as a ``Path`` (None stays None), refused unless its name ends as ``fmt``
    files do, so that an export never replaces an image, a checkpoint or another kind of file."""
    if out_path is None:
        return None
    out, suffixes = Path(out_path), OUT_SUFFIXES[fmt]
    if not out.name.lower().endswith(suffixes):
        raise ConfigError(
            f"--out {out}: {_ARTICLED[fmt]} file's name must end in {' or '.join(suffixes)}; "
            f"use e.g. {out.with_name(out.stem + suffixes[0])}"
        )
    return out


def _default_path(source: Optional[Path], model: nn.Module, fmt: str) -> Path:
    if source is not None:
        return source.parent / f"{source.name}{FORMATS[fmt]}"  # runs/x/best -> runs/x/best.onnx
    return Path(f"{getattr(model, 'model_name', 'model')}{FORMATS[fmt]}")


def _example_input(shape: list[int], batch: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *shape[1:], generator=generator)


def export_bytes(
    model: nn.Module,
    fmt: str,
    example: torch.Tensor,
    check: torch.Tensor,
    metadata: dict[str, Any],
    opset: int,
    *,
    fold_bn: bool = True,
    hint: str = "try another format",
) -> tuple[bytes, Any, str]:
    """``(file bytes, outputs on check, what ran them)`` of ``model`` exported as ``fmt``, its
    BatchNorms folded first; any exporter failure becomes one ``ExportError`` line."""
    if fold_bn:
        from resnet.deploy.optimize import optimize_for_inference

        model = optimize_for_inference(model, channels_last=False)
    with quiet_export():
        try:
            return _EXPORTERS[fmt](model, example, check, metadata, opset)
        except ResnetError:
            raise
        except Exception as error:  # every exporter has its own exception types
            raise ExportError(
                f"{fmt} export of {metadata['model_name']} failed: {first_line(error)}; {hint}"
            ) from None


def write_metadata(proto: Any, metadata: dict[str, Any]) -> None:
    """Store ``metadata`` as the ONNX model's ``resnet.*`` properties (JSON values), replacing
    any it had."""
    kept = [p for p in proto.metadata_props if not p.key.startswith("resnet.")]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"resnet.{key}", json.dumps(value)


def decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    """The ``resnet.*`` entries of an ONNX file's properties, decoded: ``write_metadata``'s
    inverse (``json.JSONDecodeError`` on a value that is not JSON)."""
    prefix = "resnet."
    return {k[len(prefix) :]: json.loads(v) for k, v in props.items() if k.startswith(prefix)}


def _export_onnx(model, example, check, metadata, opset) -> tuple[bytes, Any, str]:
    onnx, onnxruntime = require_onnx()
    buffer = io.BytesIO()
    # The TorchScript-based exporter (dynamo=False) needs no onnxscript and handles every net.
    torch.onnx.export(
        model,
        (example,),
        buffer,
        dynamo=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=opset,
    )
    proto = onnx.load_from_string(buffer.getvalue())
    write_metadata(proto, metadata)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: check.numpy()})[0]
    return data, torch.from_numpy(got), f"onnxruntime {onnxruntime.__version__}"


def _export_torchscript(model, example, check, metadata, opset) -> tuple[bytes, Any, str]:
    traced = torch.jit.trace(model, example, check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={META_FILE: json.dumps(metadata)})
    loaded = torch.jit.load(io.BytesIO(buffer.getvalue()), map_location="cpu")
    with torch.no_grad():
        got = loaded(check)
    return buffer.getvalue(), got, "torch.jit.load"


def _export_pt2(model, example, check, metadata, opset) -> tuple[bytes, Any, str]:
    program = torch.export.export(
        model, (example,), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},)
    )
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={META_FILE: json.dumps(metadata)})
    loaded = torch.export.load(io.BytesIO(buffer.getvalue()))
    with torch.no_grad():
        got = loaded.module()(check)
    return buffer.getvalue(), got, "torch.export.load"


_EXPORTERS = {"onnx": _export_onnx, "torchscript": _export_torchscript, "pt2": _export_pt2}


def require_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "ONNX export needs the onnx and onnxruntime packages: pip install onnx onnxruntime"
        ) from None
    return onnx, onnxruntime


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    # The exporters warn about deprecations and constant folding; the report says what matters.
    # On a failure, torch's TorchScript-based ONNX exporter also prints the whole traced graph
    # (hundreds of lines) from C++ (its log switch is always on: it tests the function object
    # `_jit_is_onnx_log_enabled` instead of calling it), so file descriptors 1 and 2 go to a
    # scratch file during the export; the error line says what failed.
    # A process without them (a closed stdout) exports unsilenced rather than not at all.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved: list[tuple[int, int]] = []
    with tempfile.TemporaryFile() as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                copy = os.dup(fd)
                os.dup2(scratch.fileno(), fd)
                saved.append((fd, copy))
        try:
            yield
        finally:
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:160]

"""Run an exported ONNX file (fp32 or int8) as if it were a PyTorch module, through onnxruntime.

    >>> model = OnnxModule("runs/x/best.int8.onnx", threads=1)
    >>> logits = model(images)  # float32 (N, C, H, W) in, float32 (N, num_classes) out

The file's ``resnet.*`` metadata (class names, input shape, mean, std) is in ``.metadata``;
inputs are checked against its input shape, so a wrong image size fails with a clear message
instead of an onnxruntime shape error.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from resnet.deploy.export import decode_metadata, first_line, require_onnx
from resnet.errors import DataError, WeightsError

__all__ = ["OnnxModule", "export_info", "load_inference_model", "training_precision"]

_FIX = "re-export it with `resnet export --format onnx`"


class OnnxModule(nn.Module):
    """An onnxruntime CPU session behind ``forward``; ``source`` is an ``.onnx`` path or bytes.

    ``threads`` sets onnxruntime's intra-op threads (default: ``torch.get_num_threads()``).
    """

    def __init__(
        self, source: Union[str, os.PathLike, bytes], *, threads: Optional[int] = None
    ) -> None:
        super().__init__()
        _, onnxruntime = require_onnx()
        if isinstance(source, (bytes, bytearray)):
            self.source, model = "<onnx bytes>", bytes(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise WeightsError(f"{path}: no such ONNX file; check the path or {_FIX}")
            self.source, model = str(path), str(path)
        self.threads = int(threads or torch.get_num_threads())
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: graph-optimizer notes are not for users
        try:
            self.session = onnxruntime.InferenceSession(
                model, options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own pybind types for bad files
            raise WeightsError(
                f"{self.source}: not a readable ONNX model ({first_line(error)}); {_FIX}"
            ) from None
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            self.metadata: dict[str, Any] = decode_metadata(props)
        except json.JSONDecodeError:
            raise WeightsError(
                f"{self.source}: its resnet.* metadata is not JSON; {_FIX}"
            ) from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise WeightsError(
                f"{self.source}: the model takes {len(inputs)} inputs; OnnxModule runs "
                "single-input image classifiers such as `resnet export` writes"
            )
        graph_input = inputs[0]
        self.input_name = graph_input.name
        self.output_name = self.session.get_outputs()[0].name
        # -1 (or a symbolic dim name in the graph) stands for "any size".
        shape = self.metadata.get("input_shape") or graph_input.shape
        self.input_shape = [d if isinstance(d, int) and d > 0 else -1 for d in shape]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, float32 (N, num_classes), for normalised float input (N, C, H, W)."""
        got = tuple(x.shape)
        fits = len(got) == len(self.input_shape) and all(
            want in (-1, have) for want, have in zip(self.input_shape, got)
        )
        if not fits:
            expected = ", ".join("N" if d == -1 else str(d) for d in self.input_shape)
            raise DataError(
                f"{self.source} takes input of shape ({expected}), got {got}; resize and "
                "normalise images with resnet.data.preprocess_images and the file's metadata"
            )
        array = x.detach().cpu().float().contiguous().numpy()
        (logits,) = self.session.run([self.output_name], {self.input_name: array})
        return torch.from_numpy(logits)

    def checkpoint_info(self) -> dict[str, Any]:
        """What a checkpoint's ``.json`` says, from the file's metadata (``export_info``), so
        ``evaluate`` and ``predict`` take an exported file where they take a checkpoint."""
        outputs = self.session.get_outputs()[0].shape[-1]
        return export_info(
            self.metadata, self.source, outputs if isinstance(outputs, int) else None
        )

    def extra_repr(self) -> str:
        return f"{self.source!r}, threads={self.threads}"


def export_info(meta: dict[str, Any], source: str, outputs: Optional[int] = None) -> dict:
    """A checkpoint's ``.json`` rebuilt from an exported file's metadata: ``data_meta`` (class
    names, input size, normalisation), ``model_name``, the ``train_config`` dataset, and
    ``exported: True`` (it keeps the precision it was exported in)."""
    if not meta.get("class_names") or meta.get("mean") is None or meta.get("std") is None:
        raise WeightsError(
            f"{source}: no class names or normalisation in its metadata; export it from a "
            "checkpoint written by `resnet train` (resnet export --checkpoint RUN), or make a "
            "model from elsewhere (the ONNX model zoo's resnet50-v1-7.onnx) a checkpoint: "
            "resnet import FILE --model NAME --out DIR"
        )
    data_meta = {
        "name": meta.get("dataset") or meta.get("model_name", "exported"),
        "class_names": meta["class_names"],
        "channels": meta.get("channels"),
        "image_size": meta.get("image_size"),
        "mean": meta["mean"],
        "std": meta["std"],
    }
    from resnet.data import DatasetMeta

    try:
        DatasetMeta.from_dict(data_meta)  # the metadata is editable: check every value
    except DataError as error:
        raise WeightsError(f"{source}: {error}") from None
    if outputs is not None and outputs != len(data_meta["class_names"]):
        raise WeightsError(
            f"{source}: {len(data_meta['class_names'])} class names for a network with "
            f"{outputs} outputs; re-export it with `resnet export`"
        )
    dataset = meta.get("dataset")
    return {
        "model_name": meta.get("model_name"),
        "data_meta": data_meta,
        "train_config": {"dataset": dataset} if dataset else {},
        "exported": True,
    }


def _is_torch_export(path: Path) -> bool:
    """A ``.pt2`` program, or a TorchScript archive (a zip holding ``constants.pkl``, which a
    ``torch.save``d weight file lacks) whatever its name (``model.pt``, ``x.torchscript.pt``)."""
    if path.suffix.lower() == ".pt2":
        return True
    if path.suffix.lower() not in (".pt", ".pth") or not zipfile.is_zipfile(path):
        return False
    with contextlib.suppress(zipfile.BadZipFile, OSError), zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())
    return False


def _load_torch_export(path: Path) -> tuple[nn.Module, dict]:
    """A ``resnet export --format torchscript|pt2`` file as a module, with its ``export_info``."""
    from resnet.deploy.export import META_FILE, load_exported_program

    try:
        program, meta = load_exported_program(path)
    except json.JSONDecodeError:
        raise WeightsError(f"{path}: its {META_FILE} is not JSON; re-export it") from None
    except Exception as error:  # torch raises RuntimeError, zipfile and pickle errors here
        raise WeightsError(
            f"{path}: not a readable exported model ({first_line(error)}); re-export it with "
            "`resnet export`"
        ) from None
    return _ExportedModule(program, str(path)), export_info(meta, str(path))


class _ExportedModule(nn.Module):
    """A loaded TorchScript or pt2 program behind ``forward``. It is kept out of the module
    tree: a pt2 program refuses ``.eval()`` ("not supported yet"), and an exported file runs as
    it was exported, on the CPU."""

    def __init__(self, program: Any, source: str) -> None:
        super().__init__()
        object.__setattr__(self, "program", program)  # not a child: .eval() does not reach it
        self.source = source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.program(x.detach().cpu().float().contiguous())

    def extra_repr(self) -> str:
        return repr(self.source)


def load_inference_model(
    path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict, torch.device]:
    """``(model, info, device)`` for scoring or predicting: a checkpoint as ``load_checkpoint``
    loads it, or an exported file, run on the CPU with an ``info`` rebuilt from its metadata:
    ``.onnx`` (fp32 or int8) by onnxruntime, ``.torchscript.pt`` and ``.pt2`` by torch."""
    if Path(path).suffix.lower() == ".onnx":
        model = OnnxModule(path)
        return model, model.checkpoint_info(), torch.device("cpu")
    if _is_torch_export(Path(path)):
        model, info = _load_torch_export(Path(path))  # run on the CPU, as exported
        return model, info, torch.device("cpu")
    from resnet.engine.checkpoint import load_checkpoint

    model, info = load_checkpoint(path, device=device)
    return model, info, torch.device(device)


def training_precision(
    model: nn.Module, info: dict, dtype: Optional[str] = None, device: Any = "cpu"
) -> tuple[str, Any]:
    """(name, context or None) to score ``model`` in: the ``StepContext`` its training evaluated
    in, so a checkpoint trained under bf16 autocast is run under it too, unless ``dtype`` says
    otherwise, and with the same convolution kernels (``conv_kernels``); an exported file keeps
    the precision it was exported with."""
    from resnet.engine.setup import StepContext

    if info.get("exported") or not list(model.parameters()):
        return dtype or "float32", None
    config = info.get("train_config") or {}
    amp = config.get("amp") if dtype is None else "off"
    kernels = config.get("conv_kernels", "auto")
    context = StepContext(
        amp if amp in ("auto", "bf16", "off") else "off",
        kernels if kernels in ("auto", "native") else "auto",
        torch.device(device),
    )
    if dtype is not None:
        return dtype, context
    if context.precision == "bf16":
        return "bfloat16 autocast (as trained)", context
    return "float32", context

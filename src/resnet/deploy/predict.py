"""``predict(checkpoint, paths)``: class probabilities for image files.

The checkpoint carries everything needed (class names, channels, image size, normalisation),
so inputs go through ``resnet.data.preprocess_images`` exactly as the model expects them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from resnet.checks import switches, whole_number
from resnet.errors import DataError, ResnetError, WeightsError

__all__ = ["predict"]


@torch.no_grad()
def predict(
    checkpoint: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    *,
    topk: int = 5,
    device: str = "auto",
    batch_size: int = 64,
    tta_flip: bool = False,
    tta_shift: int = 0,
) -> list[dict[str, Any]]:
    """One result per input file, in order: ``{"path", "label", "prob", "topk": [{"label",
    "index", "prob"}, ...]}``, the ``topk`` most probable classes (at most all of them).

    A folder among ``inputs`` stands for the images inside it (``.npy`` volumes for a 3D
    checkpoint), in sorted order.

    ``checkpoint`` may also be an exported file: ``.onnx`` (fp32 or int8, run by onnxruntime),
    ``.pt2`` or TorchScript.
    An input that cannot be read as an image gets ``{"path", "error"}`` (one line naming the
    file); the others are still predicted. ``tta_flip`` / ``tta_shift`` average the mirror
    image and shifted copies as ``evaluate`` does (``resnet eval --tta --tta-shift N``), so
    predict gives the labels that scored the reported accuracy.
    """
    from resnet.data import DatasetMeta, input_files, preprocess_images
    from resnet.deploy.runtime import load_inference_model, training_precision
    from resnet.device import resolve_device
    from resnet.engine.evaluate import check_tta_flip, check_tta_shift, tta_log_probs

    if not inputs:  # one path on its own is one input (input_files)
        raise DataError("predict got no inputs; pass one or more image files")
    topk = whole_number("topk", topk)
    batch_size = whole_number("batch_size", batch_size)
    switches(tta_flip=tta_flip)
    target = resolve_device(device)
    model, info, target = load_inference_model(checkpoint, device=target)
    model.eval()
    if not info.get("data_meta"):
        raise WeightsError(
            f"{checkpoint}: checkpoint has no data_meta (class names, normalisation); "
            "predict needs a checkpoint written by `resnet train`"
        )
    meta = DatasetMeta.from_dict(info["data_meta"])
    k = min(topk, meta.num_classes)  # timm's inference caps it so too
    check_tta_flip(tta_flip, meta)
    check_tta_shift(tta_shift, meta.image_size[-1])

    # The training precision and kernels, as `evaluate` scores it: bf16 autocast if the run
    # trained so.
    _, context = training_precision(model, info, device=target)
    results: list[dict[str, Any]] = []
    pending: list[tuple[int, torch.Tensor]] = []  # (index in results, (C, ...) input)
    for path in input_files(inputs, meta):
        try:
            tensor = preprocess_images([path], meta, device=target)[0]
        except (ResnetError, OSError) as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            results.append({"path": str(path), "error": message})
            continue
        results.append({"path": str(path)})
        pending.append((len(results) - 1, tensor))

    for start in range(0, len(pending), batch_size):
        chunk = pending[start : start + batch_size]
        batch = torch.stack([tensor for _, tensor in chunk])  # (B, C, H, W)
        log_probs = tta_log_probs(model, batch, flip=tta_flip, shift=tta_shift, context=context)
        probs = log_probs.exp().float()
        values, indices = probs.topk(k, dim=1)
        for (slot, _), row_values, row_indices in zip(chunk, values.tolist(), indices.tolist()):
            ranked = [
                {"label": meta.class_names[i], "index": i, "prob": p}
                for p, i in zip(row_values, row_indices)
            ]
            results[slot].update(label=ranked[0]["label"], prob=ranked[0]["prob"], topk=ranked)
    return results

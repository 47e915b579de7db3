"""Grad-CAM (Selvaraju et al. 2017, arXiv 1610.02391): where in the input a class's evidence is.

For a target layer with activations ``A`` (B, K, *S) and a class score ``y_c``, each channel k is
weighted by the spatial mean of its gradient, ``alpha_k = mean_S(d y_c / d A_k)``, and the map
is ``relu(sum_k alpha_k A_k)``: the parts of the feature map that raise the score. It works for
any network of the zoo, 2D or 3D, because it needs only a module whose output is a feature map.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from resnet.errors import ConfigError, DataError
from resnet.io import output_names
from resnet.models.inputs import check_image_batch

__all__ = ["gradcam", "resolve_target_layer", "explain_images"]


def resolve_target_layer(model: nn.Module, target_layer: Union[str, nn.Module, None]) -> nn.Module:
    """The module to explain: given, named (``"layer4"``, ``"layer3.1"``), or the last stage."""
    if isinstance(target_layer, nn.Module):
        return target_layer
    if target_layer is None:
        stages = model.stages() if hasattr(model, "stages") else []
        if not stages:
            raise ConfigError(
                f"{type(model).__name__} has no stages(); pass target_layer=<module or name>"
            )
        return stages[-1]
    try:
        return model.get_submodule(target_layer)
    except AttributeError:
        names = [f"layer{i + 1}" for i in range(len(getattr(model, "feature_info", [])))]
        raise ConfigError(
            f"model has no module {target_layer!r}; try one of {', '.join(names) or 'layer4'}"
        ) from None


def gradcam(
    model: nn.Module,
    images: Tensor,
    target_layer: Union[str, nn.Module, None] = None,
    class_idx: Union[int, Sequence[int], Tensor, None] = None,
) -> tuple[Tensor, Tensor]:
    """Grad-CAM heatmaps of ``images`` (N, C, H, W) or (N, C, D, H, W), already normalised.

    Returns ``(heatmaps, class_indices)``: heatmaps (N, H, W) (or (N, D, H, W)) in [0, 1],
    upsampled to the input size, each scaled so its maximum is 1 (all zeros where no location
    raises the score); class_indices (N,) are the explained classes, the predicted ones unless
    ``class_idx`` (one int for all, or one per image) says otherwise.

    The activations are caught with a forward hook and their gradient taken with
    ``torch.autograd.grad``: backward hooks would misfire on the blocks' in-place ReLUs.
    """
    check_image_batch(images, model)
    layer = resolve_target_layer(model, target_layer)
    captured: list[Tensor] = []

    def keep_output(_module: nn.Module, _inputs: Any, output: Tensor) -> Tensor:
        captured.append(output)
        # Later in-place ops (ReLU(inplace=True)) then change the clone, never the activations.
        return output.clone()

    was_training = model.training
    model.eval()
    handle = layer.register_forward_hook(keep_output)
    try:
        with torch.enable_grad():
            # The input requires grad so the graph exists even when the weights are frozen.
            logits = model(images.detach().requires_grad_(True))
            if not captured:
                raise ConfigError("the target layer was not called in forward; pick another")
            activations = captured[-1]  # (N, K, *S)
            if not isinstance(activations, Tensor) or activations.dim() != images.dim():
                raise ConfigError(
                    f"target layer output has shape {tuple(getattr(activations, 'shape', ()))}; "
                    "Grad-CAM needs a feature map shaped like the input (N, K, *spatial)"
                )
            classes = _class_indices(logits, class_idx)
            score = logits.gather(1, classes[:, None]).sum()  # samples are independent in eval
            (gradients,) = torch.autograd.grad(score, activations)
    finally:
        handle.remove()
        model.train(was_training)

    spatial = tuple(range(2, activations.dim()))
    weights = gradients.mean(dim=spatial, keepdim=True)  # alpha_k: (N, K, 1, ...)
    cam = torch.relu((weights * activations).sum(dim=1, keepdim=True)).detach()  # (N, 1, *S)
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(spatial)]
    cam = nn.functional.interpolate(cam, size=images.shape[2:], mode=mode, align_corners=False)
    cam = cam[:, 0].clamp_min(0)
    peak = cam.flatten(1).amax(dim=1).view(-1, *([1] * len(spatial)))
    heatmaps = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
    return heatmaps.float(), classes


def _class_indices(logits: Tensor, class_idx: Union[int, Sequence[int], Tensor, None]) -> Tensor:
    n, num_classes = logits.shape
    if class_idx is None:
        return logits.argmax(dim=1).detach()
    classes = torch.as_tensor(class_idx, device=logits.device).reshape(-1)
    if classes.is_floating_point() or classes.is_complex() or classes.dtype == torch.bool:
        raise ConfigError(f"class_idx must be whole class numbers, got {class_idx!r}")
    classes = classes.long()
    if classes.numel() == 1:
        classes = classes.expand(n)
    if classes.numel() != n:
        raise ConfigError(f"class_idx has {classes.numel()} entries for {n} images; give 1 or {n}")
    if (classes < 0).any() or (classes >= num_classes).any():
        raise ConfigError(
            f"class_idx {classes.tolist()} out of range: the model has classes 0..{num_classes - 1}"
        )
    return classes.contiguous()


def explain_images(
    checkpoint: Union[str, os.PathLike],
    inputs: Sequence[Union[str, os.PathLike]],
    *,
    out_dir: Union[str, os.PathLike] = "explain",
    class_idx: Union[int, str, None] = None,
    target_layer: Optional[str] = None,
    device: str = "auto",
    alpha: float = 0.5,
) -> list[dict[str, Any]]:
    """Write ``<out_dir>/<stem>_gradcam.png`` (input | heatmap overlay) for each input file
    (``<stem>-2_gradcam.png`` and so on where stems repeat, so no overlay replaces another).

    Inputs are images for 2D checkpoints and ``.npy`` uint8 (D, H, W) volumes for 3D ones
    (the middle slice is drawn); a folder stands for those inside it, in sorted order.
    Preprocessing (channels, size, normalisation) comes from the checkpoint's ``data_meta``.
    ``class_idx`` is the class to explain, by number or by name (default: the predicted one).
    Returns one ``{"path", "out", "class_idx", "label", "prob"}`` per input.
    """
    from resnet.data import DatasetMeta, input_files, preprocess_images
    from resnet.device import resolve_device
    from resnet.engine.checkpoint import load_checkpoint
    from resnet.explain.overlay import save_explanation, to_display_image

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]  # one path, not a string of one-letter paths
    if not inputs:
        raise DataError("explain got no inputs; pass one or more image files")
    if not 0.0 <= alpha <= 1.0:  # also refuses NaN
        raise ConfigError(f"--alpha {alpha} is the heatmap's opacity; use 0 to 1")
    target = resolve_device(device)
    model, info = load_checkpoint(checkpoint, device=target)
    if not info.get("data_meta"):
        raise DataError(
            f"{checkpoint}: checkpoint has no data_meta (normalisation, image size); "
            "explain needs a checkpoint written by `resnet train`"
        )
    meta = DatasetMeta.from_dict(info["data_meta"])
    class_idx = _class_number(class_idx, meta.class_names)
    results = []
    paths = input_files(inputs, meta)
    names = output_names([path.stem for path in paths], "_gradcam.png")
    _check_overlays_apart(Path(out_dir), inputs, paths, names, meta)
    for path, name in zip(paths, names):
        x = preprocess_images([path], meta, device=target)  # (1, C, *size)
        heatmap, classes = gradcam(model, x, target_layer, class_idx)
        with torch.no_grad():
            prob = model.eval()(x).float().softmax(1)[0, classes[0]].item()
        index = int(classes[0])
        out = Path(out_dir) / name
        title = f"{meta.class_names[index]} ({prob:.0%})"
        save_explanation(out, to_display_image(x[0], meta), heatmap[0].cpu(), title, alpha=alpha)
        label = meta.class_names[index]
        results.append({"path": str(path), "out": str(out), "class_idx": index, "label": label})
        results[-1]["prob"] = prob
    return results


def _check_overlays_apart(
    out_dir: Path, inputs: Sequence, paths: Sequence[Path], names: Sequence[str], meta: Any
) -> None:
    """Refuse an ``out_dir`` whose overlays would replace an input file, or land in an input
    folder where the next run would read them back as images to explain."""
    out = out_dir.resolve()
    replaced = {out / name for name in names} & {path.resolve() for path in paths}
    if replaced:
        raise ConfigError(
            f"--out {out_dir}: the overlay {sorted(replaced)[0]} would replace an input image; "
            "choose another --out folder"
        )
    if len(meta.image_size) == 3:
        return  # 3D inputs are .npy volumes: PNG overlays are never read back
    for item in inputs:
        folder = Path(item).resolve()
        if folder.is_dir() and out.is_relative_to(folder):
            raise ConfigError(
                f"--out {out_dir} is inside the input folder {item}: the next run would explain "
                "the overlays too; choose an --out folder outside it"
            )


def _class_number(value: Union[int, str, None], class_names: Sequence[str]) -> Optional[int]:
    """The class index ``value`` names: a class name of the checkpoint, or its number."""
    if value is None:
        return None
    listed = ", ".join(class_names[:10]) + (", ..." if len(class_names) > 10 else "")
    if isinstance(value, str) and value in class_names:
        numbers = [index for index, name in enumerate(class_names) if name == value]
        if len(numbers) > 1:  # ImageNet's "crane" (134, 517) and "maillot" (638, 639)
            raise ConfigError(
                f"--class-idx {value!r} names {len(numbers)} classes of the checkpoint "
                f"({', '.join(map(str, numbers))}); pass the number of the one you mean"
            )
        return numbers[0]
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        close = difflib.get_close_matches(str(value), class_names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"--class-idx {value!r} is not a class of the checkpoint; {hint}use a class name "
            f"or number ({listed})"
        )
    if not 0 <= value < len(class_names):
        raise ConfigError(
            f"--class-idx {value} out of range: the checkpoint has classes "
            f"0..{len(class_names) - 1} ({listed})"
        )
    return value

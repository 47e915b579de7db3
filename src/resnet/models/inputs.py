"""What a network takes as input, read from its first convolution, and one check of a batch.

Torch's own errors for a wrong batch come from deep inside (``expected input[1, 1, 64, 64] to
have 3 channels``, ``only Tensors of floating point dtype can require gradients``), and a batch
holding NaN runs to the end and returns NaN scores or blank heatmaps. Functions that take image
tensors from the caller (Grad-CAM, calibration data) check them here first.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from resnet.errors import DataError

__all__ = ["input_spec", "check_image_batch"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def input_spec(model: nn.Module) -> Optional[tuple[int, int]]:
    """(channels, spatial dims) of the model's first convolution, None if it has none."""
    first = next((m for m in model.modules() if isinstance(m, _CONVS)), None)
    if first is None:
        return None
    return first.in_channels, first.weight.dim() - 2


def check_image_batch(images: Any, model: Optional[nn.Module] = None, what: str = "images") -> None:
    """Refuse, with a ``DataError`` naming the fix, a batch ``model`` cannot take or that holds
    NaN/inf: not a float tensor, no batch dimension, the wrong channel count, no images."""
    layout = "(N, C, H, W)"
    spec = input_spec(model) if model is not None else None
    if spec is not None:
        layout = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[spec[1]]
    if not isinstance(images, Tensor) or not images.is_floating_point():
        kind = f"a {images.dtype} tensor" if isinstance(images, Tensor) else type(images).__name__
        raise DataError(
            f"{what} must be a float tensor {layout}, normalised as in training; got {kind} "
            "(uint8 pixels: x.float() / 255, then the mean/std)"
        )
    dims = spec[1] + 2 if spec is not None else None
    if (dims is not None and images.dim() != dims) or images.dim() < 3:
        unbatched = images.dim() == (dims - 1 if dims is not None else 2)
        fix = "add the batch dimension with images[None]" if unbatched else ""
        raise DataError(
            f"{what} have shape {tuple(images.shape)} but the model takes {layout}"
            + (f"; {fix}" if fix else "")
        )
    if spec is not None and images.shape[1] != spec[0]:
        raise DataError(
            f"{what} have {images.shape[1]} channel(s) but the model takes {spec[0]}; "
            f"convert them (shape {tuple(images.shape)}, model input {layout} with C={spec[0]})"
        )
    if images.numel() == 0:
        raise DataError(f"{what} hold no values (shape {tuple(images.shape)})")
    if not bool(torch.isfinite(images).all()):
        raise DataError(f"{what} hold NaN or infinite values; check how they were computed")

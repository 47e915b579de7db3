"""Drawing Grad-CAM heatmaps over their inputs: colorize, blend, save side by side as PNG."""

from __future__ import annotations

import io
import os
from typing import Any, Union

import numpy as np
import torch

from resnet.io import atomic_write

__all__ = ["to_display_image", "colorize", "overlay_heatmap", "save_explanation"]

DISPLAY_SIDE = 224  # small inputs (28x28 Fashion-MNIST) are enlarged to about this size


def to_display_image(x: torch.Tensor, meta: Any) -> np.ndarray:
    """uint8 (H, W, 3) picture of a normalised model input (C, H, W) or (C, D, H, W).

    The normalisation of ``meta`` is undone; for a volume the middle slice along D is shown.
    """
    mean = torch.tensor(meta.mean, dtype=torch.float32).view(-1, *([1] * (x.dim() - 1)))
    std = torch.tensor(meta.std, dtype=torch.float32).view(-1, *([1] * (x.dim() - 1)))
    pixels = (x.detach().float().cpu() * std + mean).clamp(0, 1)
    if pixels.dim() == 4:
        pixels = pixels[:, pixels.shape[1] // 2]  # (C, H, W), middle slice of the volume
    if pixels.shape[0] == 1:
        pixels = pixels.expand(3, -1, -1)
    return (pixels[:3].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) "jet" colours of a (H, W) map in [0, 1] (blue: low, red: high)."""
    import matplotlib

    rgba = matplotlib.colormaps["jet"](np.clip(heatmap, 0.0, 1.0))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colored ``heatmap`` (H, W) over ``image`` (H, W, 3) uint8 with weight ``alpha``."""
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colorize(heatmap)
    return blended.round().clip(0, 255).astype(np.uint8)


def save_explanation(
    path: Union[str, os.PathLike],
    image: np.ndarray,
    heatmap: torch.Tensor,
    title: str = "",
    *,
    alpha: float = 0.5,
) -> None:
    """Write ``[image | image + heatmap]`` with ``title`` above as a PNG, atomically.

    ``heatmap`` is (H, W) or, for a volume, (D, H, W) (its middle slice is drawn, matching
    ``to_display_image``).
    """
    from PIL import Image, ImageDraw

    if heatmap.dim() == 3:
        heatmap = heatmap[heatmap.shape[0] // 2]
    height, width = image.shape[:2]
    scale = max(1, DISPLAY_SIDE // max(height, width))
    size = (height * scale, width * scale)
    big_image = np.asarray(
        Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.NEAREST)
    )
    big_heatmap = torch.nn.functional.interpolate(
        heatmap[None, None].float(), size=size, mode="bilinear", align_corners=False
    )[0, 0].numpy()
    gap, header = 4, 18 if title else 0
    canvas = Image.new("RGB", (2 * size[1] + gap, size[0] + header), "white")
    canvas.paste(Image.fromarray(big_image), (0, header))
    canvas.paste(
        Image.fromarray(overlay_heatmap(big_image, big_heatmap, alpha)), (size[1] + gap, header)
    )
    if title:
        ImageDraw.Draw(canvas).text((4, 3), title, fill="black")
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())

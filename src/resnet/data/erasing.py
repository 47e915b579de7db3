"""Random erasing (Zhong et al., "Random Erasing Data Augmentation", arXiv 1708.04896): with
probability ``p`` a training image gets one rectangle, of 2-33% of its area and aspect ratio
0.3-3.3, set to the dataset mean (0 after normalisation), torchvision's ``RandomErasing``
defaults. The paper's Table 1 takes Fashion-MNIST error from 6.21% to 5.04% (ResNet-20).

Boxes are drawn for a whole epoch at once from the epoch's generator and applied to a whole
batch with one mask, so they are a pure function of (seed, epoch) like the loaders' crops.
"""

from __future__ import annotations

import math

import torch

from resnet.errors import ConfigError

__all__ = ["erase", "erasing_boxes"]

SCALE = (0.02, 0.33)  # fraction of the image area erased
RATIO = (0.3, 3.3)  # height / width of the erased rectangle, drawn log-uniformly
_ATTEMPTS = 10  # as torchvision: rectangles that do not fit are redrawn, then the image is kept


def erasing_boxes(
    generator: torch.Generator, n: int, height: int, width: int, p: float
) -> torch.Tensor:
    """(n, 4) int64 boxes (top, left, box height, box width); height 0 means "not erased"."""
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"random_erasing must be a probability in [0, 1], got {p}")
    erased = torch.rand(n, generator=generator) < p
    area = height * width * torch.empty(n, _ATTEMPTS).uniform_(*SCALE, generator=generator)
    log_ratio = torch.empty(n, _ATTEMPTS).uniform_(
        math.log(RATIO[0]), math.log(RATIO[1]), generator=generator
    )
    box_h = torch.sqrt(area * log_ratio.exp()).round().long()
    box_w = torch.sqrt(area / log_ratio.exp()).round().long()
    fits = (box_h < height) & (box_w < width) & (box_h > 0) & (box_w > 0)
    first = fits.long().argmax(dim=1, keepdim=True)  # the first attempt that fits
    box_h = box_h.gather(1, first).squeeze(1) * (fits.any(dim=1) & erased)
    box_w = box_w.gather(1, first).squeeze(1)
    # Top-left corners uniform over the places the box fits: floor(u * (room + 1)).
    corner = torch.rand(n, 2, generator=generator)
    top = (corner[:, 0] * (height - box_h + 1)).long().clamp(max=height - 1)
    left = (corner[:, 1] * (width - box_w + 1)).long().clamp(max=width - 1)
    return torch.stack([top, left, box_h, box_w], dim=1)


def erase(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``images`` (B, C, H, W) with each sample's box (rows of ``boxes``) set to 0."""
    height, width = images.shape[-2:]
    rows = torch.arange(height, device=images.device)
    cols = torch.arange(width, device=images.device)
    top, left, box_h, box_w = (v.view(-1, 1) for v in boxes.to(images.device).unbind(1))
    in_rows = (rows >= top) & (rows < top + box_h)  # (B, H)
    in_cols = (cols >= left) & (cols < left + box_w)  # (B, W)
    mask = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # (B, 1, H, W)
    return images.masked_fill(mask, 0.0)

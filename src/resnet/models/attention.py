"""Channel attention inside a residual branch: Squeeze-and-Excitation and ECA.

Both rescale the channels of the branch output before the shortcut is added; their module
names (``se.fc1``, ``se.fc2``, ``se.conv``) are timm's, so SE-ResNet and ECA-ResNet weights load.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Optional

import torch
from torch import Tensor, nn

from resnet.errors import ConfigError
from resnet.models.layers import conv_nd

__all__ = ["SqueezeExcite", "EfficientChannelAttention", "ATTENTION_LAYERS", "attention_layer"]

# "se_legacy": SENet's own sizing (Hu et al.'s nets, timm's legacy_se*): channels // 16, unrounded.
ATTENTION_LAYERS = ("se", "eca", "se_legacy")


def _round_to_eight(value: float) -> int:
    # The nearest multiple of 8, at least 8: keeps the squeezed width friendly to hardware.
    return max(8, int(value + 4) // 8 * 8)


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al. 2017, arXiv 1709.01507).

    Squeeze: global average pool to one value per channel. Excite: a two-layer bottleneck MLP
    (1x1 convs, ``channels * ratio`` wide) and a sigmoid give one gate per channel.
    """

    def __init__(
        self,
        channels: int,
        ratio: float = 1 / 16,
        *,
        spatial_dims: int = 2,
        round_to_eight: bool = True,
    ) -> None:
        super().__init__()
        # SENet's own nets squeeze to channels // 16 (4 for 64), timm's current ones round to 8.
        hidden = _round_to_eight(channels * ratio) if round_to_eight else int(channels * ratio)
        conv = conv_nd(spatial_dims)
        self.fc1 = conv(channels, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = conv(hidden, channels, 1)
        # Fixed here, not read from x.dim(): torch.fx (BN folding, export) traces a fixed graph.
        self.spatial = list(range(2, 2 + spatial_dims))

    def forward(self, x: Tensor) -> Tensor:
        squeezed = x.mean(self.spatial, keepdim=True)  # (B, C, 1, 1)
        gate = torch.sigmoid(self.fc2(self.relu(self.fc1(squeezed))))
        return x * gate


class EfficientChannelAttention(nn.Module):
    """ECA (Wang et al. 2019, arXiv 1910.03151): SE without its bottleneck.

    A 1-d convolution across the pooled channel vector replaces the MLP; its kernel grows with
    ``log2(channels)``, so each gate sees a few neighbouring channels at a cost of ``k`` weights.
    """

    def __init__(self, channels: int, ratio: float = 0.0, *, spatial_dims: int = 2) -> None:
        super().__init__()
        del ratio  # no bottleneck to size
        t = int(abs(math.log2(channels) + 1) / 2)
        kernel = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, kernel, padding=(kernel - 1) // 2, bias=False)
        self.spatial = list(range(2, 2 + spatial_dims))  # fixed for torch.fx, as in SE

    def forward(self, x: Tensor) -> Tensor:
        pooled = x.mean(self.spatial).unsqueeze(1)  # (B, 1, C): channels as a sequence
        gate = torch.sigmoid(self.conv(pooled)).squeeze(1)  # (B, C)
        for _ in self.spatial:
            gate = gate.unsqueeze(-1)  # (B, C, 1, ..., 1)
        return x * gate


def attention_layer(
    name: Optional[str], ratio: Optional[float] = None, spatial_dims: int = 2
) -> Optional[Callable[[int], nn.Module]]:
    """A constructor ``channels -> module`` for ``name`` ("se", "eca") or None for no attention.

    ``ratio`` is SE's squeeze ratio (1/16 by default, 1/4 in ResNet-RS).
    """
    if name is None or name == "none":
        return None
    if name not in ATTENTION_LAYERS:
        raise ConfigError(f"attn_layer must be one of {', '.join(ATTENTION_LAYERS)}, got {name!r}")
    if ratio is not None and not 0 < ratio <= 1:
        raise ConfigError(f"attn_ratio must be in (0, 1], got {ratio}")
    ratio = 1 / 16 if ratio is None else ratio
    if name == "se_legacy":
        return partial(SqueezeExcite, ratio=ratio, spatial_dims=spatial_dims, round_to_eight=False)
    layer = SqueezeExcite if name == "se" else EfficientChannelAttention
    return partial(layer, ratio=ratio, spatial_dims=spatial_dims)

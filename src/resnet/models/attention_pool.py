"""CLIP's attention pooling (Radford et al. 2021, arXiv 2103.00020, §2.4): the global pool of its
ResNets.

Instead of averaging the last feature map, CLIP lets the average *ask* the map what to keep: the
mean feature, plus a learned position, is the one query of a multi-head attention over all
positions (each with its own learned position). The output of that attention, projected by a
linear layer, is the image embedding. Here the projection is the network's ``fc``, so the pool
returns the heads' output, ``(B, C)``, as the average pool does, and everything built on
``fc`` (a new number of classes, dropping a classifier that does not fit, ``pre_logits``) works
unchanged.

Names: ``pos_embed``, ``q``, ``k``, ``v`` (timm's); OpenAI's ``positional_embedding``,
``q_proj``, ``k_proj``, ``v_proj`` and ``c_proj`` (our ``fc``) are renamed on load
(``clip_names.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["AttentionPool2d", "resample_positions", "interpolation_matrix"]


def _keys_cubic(x: float) -> float:
    """Keys' cubic convolution kernel with a = -0.5 (PIL's, and PyTorch's anti-aliased one)."""
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return 0.0


def interpolation_matrix(size_in: int, size_out: int) -> Tensor:
    """``(size_out, size_in)`` float64: row ``i`` weighs the inputs that make output ``i`` in
    ``F.interpolate(mode="bicubic", antialias=True, align_corners=False)`` along one axis (a
    kernel stretched by the scale when shrinking). Plain Python on ints: an exported graph
    holds the matrix as a constant, where ONNX has no anti-aliased bicubic resize."""
    scale = size_in / size_out
    support = 2.0 * scale if scale >= 1.0 else 2.0
    stretch = 1.0 / scale if scale >= 1.0 else 1.0
    rows: list[list[float]] = []
    for i in range(size_out):
        center = scale * (i + 0.5)
        first = max(int(center - support + 0.5), 0)
        last = min(int(center + support + 0.5), size_in)
        row = [0.0] * size_in
        total = 0.0
        for j in range(first, last):
            row[j] = _keys_cubic((j - center + 0.5) * stretch)
            total += row[j]
        rows.append([w / total for w in row])
    return torch.tensor(rows, dtype=torch.float64)


@torch.fx.wrap  # a leaf for torch.fx: it branches on the map's size
def resample_positions(pos_embed: Tensor, grid: int, height: int, width: int) -> Tensor:
    """``pos_embed`` (1 + grid * grid, C) for a ``height x width`` map: the mean token's row
    as it is, the grid's rows resized bicubically (anti-aliased, as timm resizes them) where
    the map is not ``grid x grid`` (an input of another size than the one trained on)."""
    if height == grid and width == grid:
        return pos_embed
    rows = interpolation_matrix(grid, height).to(pos_embed.device)
    columns = interpolation_matrix(grid, width).to(pos_embed.device)
    positions = pos_embed[1:].double().reshape(grid, grid, -1)  # float64: exact to float32's
    positions = torch.einsum("ha,wb,abc->hwc", rows, columns, positions)
    positions = positions.reshape(height * width, -1).to(pos_embed.dtype)
    return torch.cat([pos_embed[:1], positions])


class AttentionPool2d(nn.Module):
    """``(B, C, H, W) -> (B, C)``: the mean feature's multi-head attention over the map.

    Args:
        channels: ``C``, the feature map's channels (and the attention's width).
        grid: the side of the map the positions were learned on (7: a 224 input at stride 32).
        head_dim: channels per head (CLIP's 64: a ResNet-50's 2048 channels make 32 heads).
    """

    def __init__(self, channels: int, grid: int = 7, head_dim: int = 64) -> None:
        super().__init__()
        self.grid = grid
        self.num_heads = max(channels // head_dim, 1)
        self.head_dim = channels // self.num_heads
        self.pos_embed = nn.Parameter(torch.randn(grid * grid + 1, channels) * channels**-0.5)
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        for projection in (self.q, self.k, self.v):  # CLIP's initialisation
            nn.init.normal_(projection.weight, std=channels**-0.5)
            nn.init.zeros_(projection.bias)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)  # (B, 1 + HW, C)
        tokens = tokens + resample_positions(self.pos_embed, self.grid, height, width).to(x.dtype)
        heads = (batch, -1, self.num_heads, self.head_dim)
        query = self.q(tokens[:, :1]).reshape(heads).transpose(1, 2)  # (B, heads, 1, d)
        key = self.k(tokens).reshape(heads).transpose(1, 2)  # (B, heads, 1 + HW, d)
        value = self.v(tokens).reshape(heads).transpose(1, 2)
        attended = F.scaled_dot_product_attention(query, key, value)  # (B, heads, 1, d)
        return attended.reshape(batch, channels)

    def extra_repr(self) -> str:
        return f"grid={self.grid}, num_heads={self.num_heads}"

"""Anti-aliased downsampling (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again",
arXiv 1904.11486).

A strided convolution or max-pool keeps one sample in four without first removing what varies
faster than the new grid can hold, so shifting the input by one pixel can change the output a
lot. An anti-aliased net runs those layers at stride 1 and lets a low-pass filter subsample:

- ``"blur"``: a 3x3 binomial filter, ``[1, 2, 1] x [1, 2, 1] / 16``, reflect-padded, stride 2
  (the paper's filter; timm's ``BlurPool2d`` and ``resnetblur*`` nets);
- ``"avg"``: a 2x2 average pool, stride 2, the cheapest low-pass (timm's ``resnetaa*`` nets).
  In a block it rounds odd sizes up (``ceil_mode``), as the strided 1x1 shortcut beside it does;
  timm's rounds down and stops with a shape error wherever a block meets an odd map (a 40x40
  image), and at every size timm runs the two agree.

Neither has parameters, so an anti-aliased net's weight file holds exactly the plain net's
names and shapes (``layouts.py`` reads which net a timm file is from its ``config.json``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from resnet.errors import ConfigError
from resnet.models.layers import avg_pool_nd

__all__ = ["ANTI_ALIASES", "BlurPool", "anti_alias_pool"]

ANTI_ALIASES = ("avg", "blur")


class BlurPool(nn.Module):
    """``(B, C, H, W) -> (B, C, ceil(H / 2), ceil(W / 2))``: each channel blurred by the 3x3
    binomial filter, then subsampled. The filter is a fixed buffer, not saved in state_dicts."""

    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.stride = stride
        taps = torch.tensor([1.0, 2.0, 1.0]) / 4.0
        kernel = (taps[:, None] * taps[None, :]).expand(channels, 1, 3, 3).contiguous()
        self.register_buffer("filt", kernel, persistent=False)  # (C, 1, 3, 3), sums to 1

    def forward(self, x: Tensor) -> Tensor:
        # In at least float32, whatever autocast says (aten::convolution is not on its list):
        # oneDNN's bf16 depthwise convolution is 4-5x slower than its float32 one on a CPU
        # without AMX (an EPYC with AVX512-BF16).
        compute = torch.promote_types(x.dtype, torch.float32)
        padded = F.pad(x.to(compute), [1, 1, 1, 1], mode="reflect")
        stride, groups = [self.stride, self.stride], self.channels
        out = torch.convolution(
            padded, self.filt.to(compute), None, stride, [0, 0], [1, 1], False, [0, 0], groups
        )
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, stride={self.stride}"


def anti_alias_pool(kind: str, channels: int, spatial_dims: int = 2) -> nn.Module:
    """The module that subsamples a block's branch by 2 after a layer that now runs at stride 1:
    ``ceil(n / 2)`` of ``n`` pixels per side, the size of the shortcut beside it."""
    if kind == "avg":
        return avg_pool_nd(spatial_dims)(2, ceil_mode=True)
    if kind == "blur":
        if spatial_dims != 2:
            raise ConfigError(
                f"anti_alias='blur' is a 2D filter; a {spatial_dims}D net can use anti_alias='avg'"
            )
        return BlurPool(channels)
    shown = ", ".join(repr(k) for k in ANTI_ALIASES)
    raise ConfigError(f"anti_alias must be one of {shown} or None, got {kind!r}")

"""Weight standardization (Qiao et al. 2019, arXiv 1903.10520), as Big Transfer's ResNets use it.

A standardised convolution rescales each of its filters to zero mean and unit variance before it
convolves: ``W' = (W - mean(W)) / sqrt(var(W) + eps)``, per output channel. Paired with group
norm it trains without batch statistics; BiT (Kolesnikov et al. 2019, arXiv 1912.11370) trained
its ResNet-v2 nets this way. The stored tensor is the raw ``W``, so a BiT file holds the same
names and shapes as a plain pre-activation ResNet's: only a net that standardises computes what
its tensors mean.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["BIT_EPS", "standardize", "StdConv1d", "StdConv2d", "StdConv3d", "standardize_convs"]

BIT_EPS = 1e-8  # BiT's (timm's StdConv2d default is 1e-6)


def standardize(weight: Tensor, eps: float = BIT_EPS) -> Tensor:
    """Each output filter of ``weight`` at zero mean and unit (biased) variance."""
    flat = weight.reshape(weight.shape[0], -1)
    var, mean = torch.var_mean(flat, dim=1, correction=0, keepdim=True)
    return ((flat - mean) * torch.rsqrt(var + eps)).reshape_as(weight)


class StdConv1d(nn.Conv1d):
    """``nn.Conv1d`` that convolves with ``standardize(weight)``."""

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, standardize(self.weight), self.bias)


class StdConv2d(nn.Conv2d):
    """``nn.Conv2d`` that convolves with ``standardize(weight)``."""

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, standardize(self.weight), self.bias)


class StdConv3d(nn.Conv3d):
    """``nn.Conv3d`` that convolves with ``standardize(weight)``."""

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, standardize(self.weight), self.bias)


_STANDARDIZED = {nn.Conv1d: StdConv1d, nn.Conv2d: StdConv2d, nn.Conv3d: StdConv3d}


def standardize_convs(model: nn.Module) -> nn.Module:
    """Make every plain convolution of ``model`` a standardised one, in place; the parameters
    (and so the state_dict's names and shapes) stay the same."""
    for module in model.modules():
        standardized = _STANDARDIZED.get(type(module))
        if standardized is not None:
            # The subclass adds only ``forward``: the module keeps its parameters and hooks.
            module.__class__ = standardized
    return model

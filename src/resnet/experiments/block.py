"""The explainer's first example: one residual block, ``Y = relu(F(X) + X)``, on a (1, 3, 64, 64)
input, and how much of what comes out is simply what went in.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from resnet.models import ResidualBlock

__all__ = ["identity_variance_fraction", "run_block"]


def identity_variance_fraction(identity: Tensor, residual: Tensor) -> float:
    """The share of the block's pre-ReLU output ``F(x) + x`` that comes through the identity path:

        fraction = Var(x) / (Var(x) + Var(F(x)))

    with variances over every element of the tensors. ``Var(F(x) + x)`` is
    ``Var(x) + Var(F(x)) + 2 Cov(x, F(x))``; the covariance term belongs to neither path alone,
    so we split the variance the two paths carry *by themselves* and leave it out (it is
    reported separately as ``correlation``). The fraction lies in [0, 1], is exactly 1 when the
    residual branch outputs a constant (``F`` zeroed: the block is the identity) and tends to 0
    when the branch dominates.
    """
    var_identity = float(identity.double().var(unbiased=False))
    var_residual = float(residual.double().var(unbiased=False))
    total = var_identity + var_residual
    return 1.0 if total == 0.0 else var_identity / total


@torch.no_grad()
def run_block(
    channels: int = 3,
    size: int = 64,
    *,
    seed: int = 0,
    block: Optional[ResidualBlock] = None,
    x: Optional[Tensor] = None,
) -> dict:
    """Push a random image through ``ResidualBlock(channels)`` and decompose its output.

    Returns plain data: the input and output shapes, the variances of ``x`` and ``F(x)``, the
    identity fraction (see :func:`identity_variance_fraction`), the correlation of ``x`` and
    ``F(x)``, and the size of ``F(x)`` relative to ``x`` (ratio of L2 norms).
    """
    torch.manual_seed(seed)
    block = block if block is not None else ResidualBlock(channels)
    block.eval()
    if x is None:
        x = torch.randn(1, channels, size, size)  # (B, C, H, W), like one RGB image
    residual = block.residual_branch(x)  # F(x): what the two convolutions add
    y = block(x)  # relu(F(x) + x)
    x64, f64 = x.double().flatten(), residual.double().flatten()
    xc, fc = x64 - x64.mean(), f64 - f64.mean()
    denominator = float(xc.norm() * fc.norm())
    correlation = float(xc @ fc) / denominator if denominator > 0 else 0.0
    return {
        "input_shape": list(x.shape),
        "output_shape": list(y.shape),
        "residual_shape": list(residual.shape),
        "variance_identity": float(x64.var(unbiased=False)),
        "variance_residual": float(f64.var(unbiased=False)),
        "identity_fraction": identity_variance_fraction(x, residual),
        "correlation": correlation,
        # ||F(x)|| / ||x||: how large the change the branch adds is, next to the input itself.
        "relative_change": float(residual.norm() / x.norm().clamp_min(1e-12)),
        "parameters": sum(p.numel() for p in block.parameters()),
        "seed": seed,
        "tensors": {  # channel 0 of each map, kept for the picture (not saved to JSON)
            "input": x[0, 0].tolist(),
            "residual": residual[0, 0].tolist(),
            "output": y[0, 0].tolist(),
        },
    }


def format_block(result: dict) -> str:
    """The printout of the explainer: shapes and the identity share, in a few lines."""
    return "\n".join(
        [
            f"input  shape {tuple(result['input_shape'])}",
            f"output shape {tuple(result['output_shape'])}  (same shape: F(X) + X is defined)",
            f"Var(X) = {result['variance_identity']:.4f}   "
            f"Var(F(X)) = {result['variance_residual']:.4f}   "
            f"corr(X, F(X)) = {result['correlation']:+.3f}",
            f"identity fraction Var(X) / (Var(X) + Var(F(X))) = {result['identity_fraction']:.3f}",
        ]
    )

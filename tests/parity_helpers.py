"""Shared by the parity tests (timm, MONAI, transformers): importable because ``tests/`` holds the
root conftest.py, which puts this folder on ``sys.path``."""

import torch


def randomise_norms(model: torch.nn.Module) -> None:
    """Random BN statistics and affine maps (2D and 3D), so a comparison exercises every buffer;
    an untrained BN's mean 0 / var 1 would hide a swapped or missing buffer."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)

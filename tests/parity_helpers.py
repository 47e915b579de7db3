"""Shared by the parity tests (timm, MONAI, transformers): importable because ``tests/`` holds the
root conftest.py, which puts this folder on ``sys.path``."""

import torch


def randomise_norms(model: torch.nn.Module) -> None:
    """Random BN statistics and affine maps (2D and 3D) and random group-norm affine maps, so a
    comparison exercises every buffer; an untrained BN's mean 0 / var 1 would hide a swapped or
    missing buffer."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
        if isinstance(module, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm)):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)


def timm_reference(name: str, **kwargs) -> torch.nn.Module:
    """timm's ``name`` (``kwargs``: its options) in eval mode with random weights and
    randomised norms (seed 0)."""
    import timm  # a dev dependency: the parity tests never skip

    torch.manual_seed(0)
    reference = timm.create_model(name, pretrained=False, **kwargs).eval()
    randomise_norms(reference)
    return reference


def relative_difference(ours: torch.nn.Module, reference: torch.nn.Module, side: int) -> float:
    """max |ours - reference| / max |reference| on one random side x side image, in float64:
    pre-activation nets' logits reach 1e5 untrained, and a hundred standardised convs round
    differently from timm's, so float32 would leave noise where a real mismatch must show.
    Both models are returned to float32."""
    torch.manual_seed(1)
    x = torch.randn(1, 3, side, side, dtype=torch.float64)
    with torch.no_grad():
        expected = reference.double()(x)
        difference = (ours.double()(x) - expected).abs().max() / expected.abs().max()
    reference.float(), ours.float()
    return difference.item()


def timm_state_on_meta(name: str) -> dict:
    """The keys and shapes of timm's ``name`` without allocating its weights."""
    import timm

    with torch.device("meta"):
        return timm.create_model(name, pretrained=False).state_dict()

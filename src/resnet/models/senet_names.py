"""SENet's own nets (Hu et al. 2017; Cadene's pretrainedmodels, timm's ``legacy_se*``) in our names.

Their files keep torchvision's names but for three:

    layer0.conv1, layer0.bn1        -> conv1, bn1
    layer{S}.{B}.se_module.fc1/fc2  -> layer{S}.{B}.se.fc1/fc2
    last_linear                     -> fc

The networks differ from timm's SE-ResNets in what names cannot show, which the zoo's
``legacy_se*`` models (``senet.LEGACY_SE_VARIANTS``) build: the stem pools as Caffe did (3x3/2,
no padding, the last window cut short: ``stem_pool="max_ceil"``), and the SE-ResNet bottlenecks
stride their first 1x1 conv (``stride_in_1x1``; the SE-ResNeXt ones stride the grouped 3x3).
timm's legacy SE-ResNet-18/34 activate before SE (``relu_before_attn``). SENet-154's stem has
three convolutions (``layer0.conv1``..``conv3``, our deep stem's ``conv1.0``, ``.3``, ``.6``);
its other differences show in its tensors' shapes and are built by ``legacy_senet154``.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

__all__ = ["is_senet_legacy", "strides_first_1x1", "has_basic_blocks", "from_senet_names"]

_RENAMES = (("layer0.", ""), ("last_linear.", "fc."))
# SENet-154's three-conv stem, as our deep stem's Sequential (conv, BN, ReLU three times, its last
# BN outside as bn1).
_SENET154_STEM = (
    ("layer0.conv1.", "conv1.0."),
    ("layer0.bn1.", "conv1.1."),
    ("layer0.conv2.", "conv1.3."),
    ("layer0.bn2.", "conv1.4."),
    ("layer0.conv3.", "conv1.6."),
    ("layer0.bn3.", "bn1."),
    ("last_linear.", "fc."),
)


def is_senet_legacy(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` is in SENet's own names (its stem is ``layer0``)."""
    return "layer0.conv1.weight" in state and any(".se_module." in key for key in state)


def has_basic_blocks(state: Mapping[str, Tensor]) -> bool:
    """Whether it is SE-ResNet-18/34 (timm's legacy_seresnet18/34): no third conv."""
    return "layer1.0.conv3.weight" not in state


def strides_first_1x1(state: Mapping[str, Tensor]) -> bool:
    """Whether its bottlenecks stride the first 1x1: SE-ResNet-50/101/152's do, SE-ResNeXt's
    (a grouped 3x3) do not; basic blocks have no 1x1."""
    conv2 = state.get("layer1.0.conv2.weight")
    grouped = conv2 is None or conv2.shape[1] != conv2.shape[0]  # grouped: a slice of input
    return not grouped and not has_basic_blocks(state)


def from_senet_names(state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """``state`` in our names (``label``: kept for the readers' common signature)."""
    renames = _SENET154_STEM if "layer0.conv2.weight" in state else _RENAMES
    renamed = {}
    for key, value in state.items():
        for old, new in renames:
            if key.startswith(old):
                key = new + key.removeprefix(old)
                break
        renamed[key.replace(".se_module.", ".se.")] = value
    return renamed

"""The checks of ``ResNet``'s options: each wrong or contradictory one is a one-line
``ConfigError`` naming it and the fix, so a net is never built otherwise than it was asked for.

``block_options`` checks the options its blocks take (where the stride sits, what follows the
norm, SENet-154's narrower first 1x1, anti-aliasing) against the block type and each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

from torch import nn

from resnet.errors import ConfigError
from resnet.models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from resnet.models.blur_pool import ANTI_ALIASES

__all__ = [
    "PREACT_BLOCKS",
    "BlockOptions",
    "block_options",
    "check_stages",
    "check_choice",
    "per_dim",
]

PREACT_BLOCKS = (PreActBasicBlock, PreActBottleneck)


@dataclass(frozen=True)
class BlockOptions:
    """The block options as ``ResNet`` keeps them (the attributes checkpoints record)."""

    stride_in_1x1: bool
    relu_before_attn: bool
    first_conv_ratio: float
    project_first_shortcut: bool
    anti_alias: Optional[str]


def block_options(
    block: type,
    norm_layer: Callable[[int], nn.Module],
    *,
    attn_layer: Any,
    stride_in_1x1: Any,
    relu_before_attn: Any,
    first_conv_ratio: Any,
    project_first_shortcut: Any,
    anti_alias: Any,
    residual_projection: bool,
) -> BlockOptions:
    """``ResNet``'s block options, checked against ``block`` and each other."""
    if getattr(norm_layer, "activates", False) and block not in PREACT_BLOCKS:
        raise ConfigError(
            f"norm_layer {norm_layer.__name__} activates as it normalises, which the "
            "pre-activation blocks expect: use it with preact_resnet* (timm's resnetv2_*)"
        )
    if stride_in_1x1 is True and block is not Bottleneck:  # non-bools: _check_switches
        raise ConfigError(
            f"stride_in_1x1 applies to the Bottleneck of ResNet-50 and up (the paper's v1), "
            f"not to {block.__name__}: drop the option"
        )
    if relu_before_attn is True and (block is not BasicBlock or attn_layer is None):
        raise ConfigError(
            "relu_before_attn applies to basic blocks with channel attention (SENet's "
            f"SE-ResNet-18/34), not to {block.__name__} with attn_layer={attn_layer!r}"
        )
    ratio_ok = isinstance(first_conv_ratio, (int, float)) and 0 < first_conv_ratio <= 1
    if (
        not ratio_ok
        or isinstance(first_conv_ratio, bool)
        or (first_conv_ratio != 1 and block is not Bottleneck)
    ):
        raise ConfigError(
            "first_conv_ratio narrows a Bottleneck's first 1x1 (SENet-154: 0.5): a number "
            f"in (0, 1] for Bottleneck, got {first_conv_ratio!r} for {block.__name__}"
        )
    if project_first_shortcut is True and not residual_projection:
        raise ConfigError(
            "project_first_shortcut applies to projection shortcuts (shortcut='B') of a "
            "residual net; drop the option"
        )
    return BlockOptions(
        stride_in_1x1=stride_in_1x1 is True,
        relu_before_attn=relu_before_attn is True,
        first_conv_ratio=float(first_conv_ratio),
        project_first_shortcut=project_first_shortcut is True,
        anti_alias=_check_anti_alias(anti_alias, block, stride_in_1x1 is True),
    )


def _check_anti_alias(anti_alias: Any, block: type, stride_in_1x1: bool) -> Optional[str]:
    check_choice("anti_alias", anti_alias, (None, *ANTI_ALIASES))
    if anti_alias is not None and block in PREACT_BLOCKS:
        raise ConfigError(
            f"anti_alias applies to BasicBlock and Bottleneck, not to {block.__name__}: drop it"
        )
    if anti_alias is not None and stride_in_1x1:
        raise ConfigError(
            "anti_alias subsamples after the 3x3 convolution, stride_in_1x1 on the 1x1 before "
            "it: use one of them"
        )
    return anti_alias


def check_stages(
    layers: Sequence[int],
    planes: Sequence[int],
    strides: Sequence[int],
    shortcut: str,
    num_classes: int,
    in_chans: int,
) -> None:
    """The stage lists agree (3 or 4 stages), the shortcut is A or B, and the sizes are >= 1."""
    if not len(layers) == len(planes) == len(strides) or len(layers) not in (3, 4):
        raise ConfigError("layers, planes and strides must all have 3 or 4 entries, one per stage")
    if shortcut not in ("A", "B"):
        raise ConfigError(
            f"shortcut must be 'A' (zero padding) or 'B' (projection), got {shortcut!r}"
        )
    if num_classes < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    if in_chans < 1:
        raise ConfigError(f"in_chans must be at least 1, got {in_chans}")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """``ConfigError`` listing ``choices`` unless ``value`` is one of them."""
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name} must be one of {shown}, got {value!r}")


def per_dim(
    value: Union[int, Sequence[int], None], preset: int, spatial_dims: int, name: str
) -> tuple[int, ...]:
    """One positive int per spatial dim, from an int, a sequence, or None (the stem's preset)."""
    value = preset if value is None else value
    values = (value,) * spatial_dims if isinstance(value, int) else tuple(value)
    if len(values) != spatial_dims or any(int(v) < 1 for v in values):
        raise ConfigError(
            f"{name} must be a positive int or {spatial_dims} positive ints, got {value!r}"
        )
    return tuple(int(v) for v in values)

"""Make a trained network cheaper to run: BatchNorm folding, channels-last, bfloat16, compile.

In eval mode a BatchNorm after a convolution is an affine map per output channel, so it can be
merged into the convolution's weight and bias (``y = gamma * (conv(x) - mean) / sqrt(var + eps)
+ beta``): one pass over memory instead of two, and a bias the convolution adds for free.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from resnet.checks import switches
from resnet.errors import ConfigError

__all__ = ["optimize_for_inference", "fold_batch_norms", "find_conv_bn_pairs"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _is_foldable_norm(module: nn.Module) -> bool:
    # nn.BatchNorm1d/2d/3d and FrozenBatchNorm2d all hold running statistics and an affine map.
    return (
        getattr(module, "running_mean", None) is not None
        and getattr(module, "running_var", None) is not None
        and hasattr(module, "eps")
    )


def find_conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """``(conv_name, norm_name)`` for every norm whose only input is a convolution used once.

    The graph comes from ``torch.fx``, so the pairs follow the data flow, not the module names:
    in a pre-activation block (arXiv 1603.05027) ``bn1`` normalises the block *input*, which is
    a sum, so it is not paired and stays in place; its ``bn2`` follows ``conv1`` and is paired.
    """
    from torch import fx

    class NormsAsLeaves(fx.Tracer):
        # Custom norms (FrozenBatchNorm2d) must appear as one call, like nn.BatchNorm2d does.
        def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
            return _is_foldable_norm(module) or super().is_leaf_module(module, qualified_name)

    try:
        graph = NormsAsLeaves().trace(model)
    except Exception as error:  # fx raises many types for untraceable Python control flow
        raise ConfigError(
            f"cannot trace {type(model).__name__} to find conv-BN pairs ({error}); "
            "pass fold_bn=False to optimize_for_inference"
        ) from None
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not _is_foldable_norm(model.get_submodule(node.target)):
            continue
        source = node.args[0] if node.args else None
        if not isinstance(source, fx.Node) or source.op != "call_module":
            continue
        # Exactly a plain conv: a weight-standardised one (BiT's) would undo a folded scale.
        if type(model.get_submodule(source.target)) not in _CONVS:
            continue
        # The conv's raw output must feed nothing else, and neither module may be reused.
        if len(source.users) == 1 and calls[source.target] == 1 and calls[node.target] == 1:
            pairs.append((source.target, node.target))
    return pairs


@torch.no_grad()
def _fold_into(conv: nn.Module, norm: nn.Module) -> None:
    # Work in float64 so the fold itself adds no rounding beyond the final cast.
    dtype = conv.weight.dtype
    var = norm.running_var.double()
    scale = torch.rsqrt(var + norm.eps)
    if getattr(norm, "weight", None) is not None:
        scale = scale * norm.weight.double()
    shift = -norm.running_mean.double() * scale
    if getattr(norm, "bias", None) is not None:
        shift = shift + norm.bias.double()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(shift)
    view = (-1,) + (1,) * (conv.weight.dim() - 1)  # (out_channels, 1, 1, ...)
    conv.weight.copy_((conv.weight.double() * scale.view(view)).to(dtype))
    new_bias = (bias * scale + shift).to(dtype)
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias, requires_grad=False)
    else:
        conv.bias.copy_(new_bias)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def fold_batch_norms(model: nn.Module) -> int:
    """Fold every conv -> BatchNorm pair of an eval-mode ``model`` in place; returns the count.

    Each folded norm is replaced by ``nn.Identity``, so the module tree (and methods such as
    ``forward_features`` or ``stages()``) stays as it was.
    """
    if model.training:
        raise ConfigError(
            "fold_batch_norms needs an eval-mode model (BN in training uses batch statistics); "
            "call model.eval() first"
        )
    pairs = find_conv_bn_pairs(model)
    for conv_name, norm_name in pairs:
        _fold_into(model.get_submodule(conv_name), model.get_submodule(norm_name))
        _set_submodule(model, norm_name, nn.Identity())
    return len(pairs)


def _channels_last_format(model: nn.Module) -> Optional[torch.memory_format]:
    dims = {m.weight.dim() for m in model.modules() if isinstance(m, _CONVS)}
    if dims == {4}:
        return torch.channels_last
    if dims == {5}:
        return torch.channels_last_3d
    return None  # 1-d nets have no channels-last layout


class _PrepareInputs:
    """A forward pre-hook that gives the input the network's memory format and dtype, so every
    conv runs NHWC (and bfloat16) kernels without the caller converting anything (a class, so
    deepcopy keeps it)."""

    def __init__(self, memory_format: Optional[torch.memory_format], dtype: Optional[torch.dtype]):
        self.memory_format = memory_format
        self.dtype = dtype

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        x, *rest = args
        if self.dtype is not None:
            x = x.to(self.dtype)
        if self.memory_format is not None:
            x = x.contiguous(memory_format=self.memory_format)
        return (x, *rest)


def _float32_outputs(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    # Logits of a reduced-precision net come back as float32, as callers expect of a classifier.
    return output.float()


_REDUCED_PRECISION = (torch.bfloat16, torch.float16)


def optimize_for_inference(
    model: nn.Module,
    *,
    fold_bn: bool = True,
    channels_last: bool = True,
    dtype: Optional[torch.dtype] = None,
    compile: bool = False,
    inplace: bool = False,
) -> nn.Module:
    """An inference-only version of ``model`` whose outputs match the original within ~1e-5.

    - eval mode, parameters frozen (``requires_grad=False``);
    - every BatchNorm that follows a convolution folded into it (``fold_batch_norms``); the
      norms of pre-activation blocks that see a block's input sum are left in place;
    - channels-last (NHWC / NDHWC) weights and inputs, which the oneDNN CPU kernels and
      GPU tensor cores prefer;
    - ``dtype=torch.bfloat16`` (or ``torch.float16`` on a GPU): weights and activations in 16
      bits, logits returned as float32. Not exact: about 3 significant digits, so the logits
      differ by ~1e-2 and the top-1 class very rarely (``bench/inference.py`` measures both).
      On CPUs with AVX512-BF16 or AMX it is ~1.7x faster than float32 at batch 1;
    - ``torch.compile`` when ``compile=True`` (off by default: compiling takes a minute or more).

    The original is left untouched unless ``inplace=True``. Without ``compile`` the result is
    the same class with the same methods (``forward_features``, ``stages()``, ``model_name``).
    """
    switches(fold_bn=fold_bn, channels_last=channels_last, compile=compile, inplace=inplace)
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"optimize_for_inference takes an nn.Module, got {type(model).__name__}; build it "
            "with create_model or create_model_from_checkpoint first"
        )
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if fold_bn:
        fold_batch_norms(model)
    if dtype is not None and dtype not in _REDUCED_PRECISION + (torch.float32, torch.float64):
        raise ConfigError(
            f"dtype {dtype} is not a floating-point inference dtype; use torch.float32, "
            "torch.bfloat16 or torch.float16"
        )
    memory_format = _channels_last_format(model) if channels_last else None
    if memory_format is not None:
        model.to(memory_format=memory_format)
    if dtype is not None:
        model.to(dtype)  # after the fold, which works in float64, so it rounds only once
    if memory_format is not None or dtype is not None:
        model.register_forward_pre_hook(_PrepareInputs(memory_format, dtype))
    if dtype in _REDUCED_PRECISION:
        model.register_forward_hook(_float32_outputs)
    if compile:
        # Freezing lets inductor treat the weights as constants: it pre-packs them for oneDNN
        # and fuses conv + bias + ReLU, which is where most of the CPU speed-up comes from.
        return torch.compile(model, options={"freezing": True})
    return model

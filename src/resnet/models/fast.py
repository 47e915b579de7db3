"""ResNet-9: the residual network of the CIFAR-10 training speed-runs, shaped for the hardware.

David Page's DAWNBench entry ("How to train your ResNet", 2018; 94% on CIFAR-10 in 26 s on one
V100), the starting point of Keller Jordan's airbench: a 3x3 stem, then three stages that each
open with a conv + 2x2 max-pool transition (pooled before BN-ReLU, as in airbench), the first
and last followed by a residual block with an identity shortcut. Few, wide layers (64-512
channels) keep the convolutions large and dense, which is what matrix units (AMX, tensor
cores) run fastest; the skip connections carry the rest, as He et al. (arXiv 1512.03385)
teach. Global max pooling and a linear classifier close it, as in Page's network.

``width`` scales every stage (``resnet9_slim`` is 0.5x: 32-256 channels), ``blocks`` the
residual blocks per stage. ``whitened_stem`` replaces the stem's learned conv + BN by airbench's
patch-whitening conv (``resnet.models.whitening``): its filters come from the training images
through :meth:`ResNet9.whiten_stem`, which ``resnet train`` calls before the first step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor, nn

from resnet.checks import whole_number
from resnet.errors import ConfigError
from resnet.models.blocks import BasicBlock
from resnet.models.blur_pool import anti_alias_pool
from resnet.models.layers import activation, conv3x3
from resnet.models.registry import register_model
from resnet.models.whitening import patch_whitening_filters

__all__ = ["ResNet9"]


def _transition(
    inplanes: int,
    planes: int,
    act_layer: str,
    anti_alias: Optional[str] = None,
    ceil_mode: bool = False,
) -> nn.Sequential:
    """conv3x3 -> 2x2 max-pool -> BN -> activation (ReLU unless ``act_layer`` says): more
    channels, half the resolution.

    Pooling before the normalisation (as airbench does; Page's net pools last) runs BN and ReLU
    on a quarter of the values: on a CPU those memory-bound passes, not the convolutions, are
    most of a training step.
    """
    if anti_alias is None:
        pool: nn.Module = nn.MaxPool2d(2, ceil_mode=ceil_mode)
    else:  # Zhang 2019's MaxBlurPool: the max at stride 1, a low-pass filter subsamples
        pool = nn.Sequential(nn.MaxPool2d(2, 1), anti_alias_pool(anti_alias, planes))
    return nn.Sequential(
        conv3x3(inplanes, planes),
        pool,
        nn.BatchNorm2d(planes),
        activation(act_layer),
    )


class ResNet9(nn.Module):
    """Stem, three (transition + residual blocks) stages, global max pool, linear classifier.

    Args:
        num_classes: size of the classifier output.
        in_chans: input channels (1 for Fashion-MNIST).
        width: multiplier of the channel widths 64 (stem), 128, 256, 512 (stages).
        blocks: residual blocks after each stage's transition; Page's net has (1, 0, 1).
        zero_init_residual: start each block's last BN at zero, so every block starts as the
            identity (Goyal et al. 2017).
        whitened_stem: a fixed patch-whitening 3x3 conv with a learned bias and no BN as the
            stem (2*9*in_chans channels; 18 for Fashion-MNIST, whatever ``width``). Call
            :meth:`whiten_stem` on training images before training.
        logit_scale: multiplies the classifier's output. Page's ResNet-9 scales its logits by
            0.125 and airbench by 1/9: the max-pooled features are large, and unscaled logits
            make the first steps at a high learning rate overshoot (loss 2.3 -> 5-7 -> back).
        act_layer: the activation after every BN: ``"relu"`` (Page's), ``"gelu"`` (airbench's),
            ``"silu"`` or ``"hardswish"`` (``resnet.models.layers.ACTIVATIONS``). A smooth one
            trains a short run further (the fast recipe's 720 steps: see that recipe).
        anti_alias: ``"blur"`` or ``"avg"``: each transition takes its max at stride 1 and a
            low-pass filter subsamples (Zhang 2019's MaxBlurPool, ``blur_pool.py``); None: the
            2x2 max-pool.
        ceil_mode: the transitions' max-pools round up, so a 28-pixel image ends at 4x4
            (28 -> 14 -> 7 -> 4), the last row and column kept that 7 -> 3 drops. Measured on
            the best recipe (seed 0, 2026-12-04): 94.70% against 95.06% without it.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        *,
        width: float = 1.0,
        blocks: Sequence[int] = (1, 0, 1),
        zero_init_residual: bool = False,
        whitened_stem: bool = False,
        logit_scale: float = 1.0,
        act_layer: str = "relu",
        anti_alias: Optional[str] = None,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 < width <= 8.0 or len(blocks) != 3 or any(b < 0 for b in blocks):
            raise ConfigError(
                f"ResNet9 needs 0 < width <= 8 and three block counts >= 0, got {width}, {blocks}"
            )
        if ceil_mode and anti_alias is not None:
            raise ConfigError(
                f"ceil_mode is for the max-pool transitions; anti_alias={anti_alias!r} "
                "subsamples by a filter instead: pass one of the two"
            )
        if not 0.0 < logit_scale < float("inf"):
            raise ConfigError(f"logit_scale must be a positive number, got {logit_scale}")
        self.logit_scale = float(logit_scale)
        self.anti_alias = anti_alias  # what its weights assume (resnet.models.layouts)
        stem, *widths = (max(8, round(c * width)) for c in (64, 128, 256, 512))
        self.in_chans, self.spatial_dims, self.num_stages = in_chans, 2, 3
        self.whitened_stem, self.stem_whitened = whitened_stem, False
        if whitened_stem:
            stem = 2 * 9 * in_chans  # each whitening filter and its negative
            self.conv1 = nn.Conv2d(in_chans, stem, 3, padding=1, bias=True)
            self.conv1.weight.requires_grad_(False)  # fixed; only the bias learns
            self.bn1: nn.Module = nn.Identity()
        else:
            self.conv1 = conv3x3(in_chans, stem)  # (B, C, H, W) -> (B, stem, H, W)
            self.bn1 = nn.BatchNorm2d(stem)
        self.relu = activation(act_layer)  # the stem's; named as torchvision's ResNet names it
        self.feature_info: list[dict[str, Any]] = []
        inplanes = stem
        for index, (planes, count) in enumerate(zip(widths, blocks)):
            # Each stage halves the resolution: 32 -> 16 -> 8 -> 4 (28 -> 14 -> 7 -> 3).
            layers = [_transition(inplanes, planes, act_layer, anti_alias, ceil_mode)]
            layers += [BasicBlock(planes, planes, act_layer=act_layer) for _ in range(count)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*layers))
            self.feature_info.append(
                {"module": f"layer{index + 1}", "num_chs": planes, "reduction": 2 ** (index + 1)}
            )
            inplanes = planes
        self.num_features = inplanes
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(self.num_features, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if whitened_stem:
            nn.init.zeros_(self.conv1.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    @torch.no_grad()
    def whiten_stem(self, images: Tensor, eps: float = 5e-4) -> None:
        """Set the whitened stem's filters from the 3x3 patches of ``images`` (B, in_chans,
        H, W), normalised as the training loader yields them."""
        if not self.whitened_stem:
            raise ConfigError("whiten_stem needs a ResNet9 built with whitened_stem=True")
        if images.dim() != 4 or images.shape[1] != self.in_chans:
            raise ConfigError(
                f"whiten_stem needs images (B, {self.in_chans}, H, W), got {tuple(images.shape)}"
            )
        filters = patch_whitening_filters(images, kernel_size=3, eps=eps)
        self.conv1.weight.copy_(filters.to(self.conv1.weight))
        self.stem_whitened = True

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args)
        if prefix + "conv1.weight" in state_dict:  # trained or whitened weights, loaded
            self.stem_whitened = True

    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3]

    def forward_stem(self, x: Tensor) -> Tensor:
        if self.training and self.whitened_stem and not self.stem_whitened:
            raise ConfigError(
                "this ResNet9's whitened stem was never whitened: call "
                "model.whiten_stem(training_images) before training (resnet train does)"
            )
        return self.relu(self.bn1(self.conv1(x)))

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, in_chans, H, W) -> (B, num_features, H/8, W/8)."""
        x = self.forward_stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        return self.layer3(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.pool(x).flatten(1)  # (B, num_features)
        if pre_logits:
            return x
        logits = self.fc(x)
        return logits if self.logit_scale == 1.0 else logits * self.logit_scale

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        num_classes = whole_number("num_classes", num_classes)
        self.fc = nn.Linear(self.num_features, num_classes, device=self.fc.weight.device)


@register_model(family="cifar", default_input_size=32)
def resnet9(**kwargs: Any) -> ResNet9:
    """Page's ResNet-9 (64-128-256-512 channels, 6.6M parameters at 10 classes)."""
    return ResNet9(**kwargs)


@register_model(family="cifar", default_input_size=32)
def resnet9_slim(**kwargs: Any) -> ResNet9:
    """ResNet-9 at half width (32-64-128-256): a quarter of the FLOPs, for 2-core CPUs."""
    return ResNet9(**{"width": 0.5, **kwargs})

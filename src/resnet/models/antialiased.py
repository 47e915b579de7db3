"""Anti-aliased ResNets (Zhang 2019, arXiv 1904.11486): timm's ``resnetaa*`` and ``resnetblur*``.

Each is ``ResNet`` with ``anti_alias`` set: the strided 3x3 convolution of every downsampling
block runs at stride 1 and a low-pass filter subsamples after it (``blur_pool.py``), and the
stem pools through the same filter. ``"avg"`` nets (a 2x2 average) replace the stem's max-pool
by the average pool; ``"blur"`` nets keep a 3x3 max-pool at stride 1 and blur after it. The
projection shortcuts stay as they are (strided 1x1, or ResNet-D's average pool).

Names, module names and shapes are timm's, so ``timm.create_model(name).state_dict()`` loads
strictly and gives the same outputs; they are also exactly the plain net's (the filters have
no parameters), so only timm's ``config.json`` beside a file tells the two apart.
"""

from __future__ import annotations

from typing import Any

from resnet.models.blocks import BasicBlock, Bottleneck
from resnet.models.resnet import BlockType
from resnet.models.resnet_d import variant_builder

__all__ = ["ANTI_ALIASED_VARIANTS"]

_AVG = {"anti_alias": "avg", "stem_pool": "avg"}
_BLUR = {"anti_alias": "blur", "stem_pool": "max_blur"}
_D = {"stem": "deep", "downsample": "avg"}  # ResNet-D, as in resnet_d.py
_SE_X32x8 = {"attn_layer": "se", "groups": 32, "width_per_group": 8}
_B, _BN = BasicBlock, Bottleneck

# name: (block, blocks per stage, options, one-line description)
ANTI_ALIASED_VARIANTS: dict[str, tuple[BlockType, tuple[int, ...], dict[str, Any], str]] = {
    "resnetblur18": (_B, (2, 2, 2, 2), _BLUR, "ResNet-18 with blur-pool anti-aliasing"),
    "resnetblur50": (_BN, (3, 4, 6, 3), _BLUR, "ResNet-50 with blur-pool anti-aliasing"),
    "resnetaa50": (_BN, (3, 4, 6, 3), _AVG, "ResNet-50 with average-pool anti-aliasing"),
    "resnetaa50d": (_BN, (3, 4, 6, 3), {**_AVG, **_D}, "ResNet-50-D, average-pool anti-aliased"),
    "resnetaa101d": (
        _BN,
        (3, 4, 23, 3),
        {**_AVG, **_D},
        "ResNet-101-D, average-pool anti-aliased",
    ),
    "seresnextaa101d_32x8d": (
        _BN,
        (3, 4, 23, 3),
        {**_AVG, **_D, **_SE_X32x8},
        "SE-ResNeXt-101-D 32x8d, average-pool anti-aliased",
    ),
    "seresnextaa201d_32x8d": (
        _BN,
        (3, 24, 36, 4),
        {**_AVG, **_D, **_SE_X32x8, "stem_width": 128},
        "SE-ResNeXt-201-D 32x8d, average-pool anti-aliased, a deep stem twice as wide",
    ),
}

for _name, (_block, _layers, _options, _doc) in ANTI_ALIASED_VARIANTS.items():
    variant_builder(_name, _block, _layers, _options, _doc)

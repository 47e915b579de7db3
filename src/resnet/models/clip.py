"""CLIP's image encoders (Radford et al. 2021, arXiv 2103.00020, §2.4): OpenAI's "modified
ResNets" RN50, RN101, RN50x4, RN50x16 and RN50x64, under timm's names (``resnet50_clip`` ..).

CLIP changed three things in ResNet-50, each an option of the one ``ResNet`` here:

- a deep stem, three 3x3 convolutions, then a 2x2 average pool instead of the max-pool
  (``stem="deep"``, ``stem_pool="avg"``);
- anti-aliased downsampling: a strided block runs its 3x3 at stride 1 and average-pools
  after it, and its projection shortcut average-pools before its 1x1 (``anti_alias="avg"``,
  ``downsample="avg"``; Zhang 2019, ResNet-D);
- attention pooling instead of the global average (``global_pool="attention"``,
  ``attention_pool.py``); its output projection is ``fc``, so ``num_classes`` is the size of
  the image embedding (1024 for RN50) and a new number of classes fine-tunes it.

The wider nets scale every width (RN50x4: 1.25x, x16: 1.5x, x64: 2x) and were trained on larger
images (288, 384, 448 pixels: the attention pool's positions cover a 9x9, 12x12 and 14x14 map).
The ``_clip_gap`` nets are the same trunks with the average pool and a classifier (timm's).
OpenAI's, open_clip's and timm's files load through ``clip_names``.
"""

from __future__ import annotations

from typing import Any

from resnet.models.blocks import Bottleneck
from resnet.models.resnet_d import variant_builder

__all__ = ["CLIP_VARIANTS"]

_CLIP = {
    "stem": "deep",
    "stem_pool": "avg",
    "downsample": "avg",
    "anti_alias": "avg",
}

# name: (blocks per stage, width, embedding size, input size, OpenAI's name)
CLIP_VARIANTS: dict[str, tuple[tuple[int, ...], int, int, int, str]] = {
    "resnet50_clip": ((3, 4, 6, 3), 64, 1024, 224, "RN50"),
    "resnet101_clip": ((3, 4, 23, 3), 64, 512, 224, "RN101"),
    "resnet50x4_clip": ((4, 6, 10, 6), 80, 640, 288, "RN50x4"),
    "resnet50x16_clip": ((6, 8, 18, 8), 96, 768, 384, "RN50x16"),
    "resnet50x64_clip": ((3, 15, 36, 10), 128, 1024, 448, "RN50x64"),
}


def _clip_builder(name: str, attention: bool) -> Any:
    layers, width, embedding, size, openai = CLIP_VARIANTS[name]
    options: dict[str, Any] = {
        **_CLIP,
        "stem_width": width,
        "planes": (width, 2 * width, 4 * width, 8 * width),
    }
    if attention:
        options.update(global_pool="attention", attention_grid=size // 32, num_classes=embedding)
    registered = name if attention else name.replace("_clip", "_clip_gap")
    pool = f"attention pool, a {embedding}-d embedding" if attention else "average pool"
    doc = f"CLIP's {openai} image encoder ({pool})"
    return variant_builder(registered, Bottleneck, layers, options, doc, default_input_size=size)


for _name in CLIP_VARIANTS:
    _clip_builder(_name, attention=True)
    _clip_builder(_name, attention=False)

"""Checkpoints of self-supervised methods: the ResNet a method trained, without what trained it.

MoCo, SimSiam, DINO, SwAV, Barlow Twins and VICReg (and OpenMMLab's versions of them) each train
a torchvision ResNet inside a larger module (a second encoder, a queue, a projector, a
predictor, prototypes) and save the whole module. Each method's own linear evaluation takes one
network back out by its attribute name and drops the rest (MoCo's ``main_lincls.py`` keeps
``module.encoder_q`` without its ``fc``; DINO's ``eval_linear.py`` the teacher's ``backbone``);
``from_self_supervised`` does the same by the names each method's code gives its parts, and says
what it kept and what it left out. The kept network's ``fc``, where MoCo and SimSiam have one,
is their projection head (its outputs are an embedding, not classes) and is left out too: the
model keeps a fresh classifier.

A checkpoint with anything besides a method's known parts is left as it is, so that loading
it names the keys that do not fit rather than dropping them unseen. Checkpoints that hold
their networks in separate mappings are taken apart first (``pick_network``): DINO's
``teacher`` beside its ``student``, and VISSL's trunk (the library behind many released
self-supervised ResNet-50s: SimCLR, SwAV, PIRL, Barlow Twins ... in ``.torch`` files).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

__all__ = ["SelfSupervised", "METHODS", "pick_network", "from_self_supervised"]


@dataclass(frozen=True)
class SelfSupervised:
    """One method's checkpoint: where its network is and what else it holds."""

    method: str  # the method, as its papers name it
    network: str  # the prefix of the network its linear evaluation keeps ("" for the top level)
    role: str  # what the method calls that network
    parts: tuple[str, ...]  # prefixes ("encoder_k.") or names ("queue") of the other parts
    left_out: str  # those parts, in words
    projection_fc: bool = False  # the network's own ``fc`` is a projection head, left out
    optional: tuple[str, ...] = ()  # parts some of its checkpoints have and others not
    never: tuple[str, ...] = ()  # parts that make it another kind of file (a classifier's head)

    def owns(self, key: str) -> bool:
        """Whether ``key`` is one of the method's other parts."""
        return any(_is_in(key, part) for part in self.parts + self.optional)

    def matches(self, keys: set[str]) -> bool:
        """Whether ``keys`` are this method's checkpoint: each of its parts there (Barlow Twins's
        ``bn`` tells it from VICReg), nothing else beside its network, and a network."""
        network = {k for k in keys if k.startswith(self.network) and not self.owns(k)}
        has_parts = all(any(_is_in(k, part) for k in keys) for part in self.parts)
        foreign = any(_is_in(k, part) for k in keys for part in self.never)
        owned = all(self.owns(k) for k in keys - network)
        return bool(network) and has_parts and owned and not foreign


def _is_in(key: str, part: str) -> bool:
    return key == part or (part.endswith(".") and key.startswith(part))


METHODS = (
    # MoCo v1/v2 (arXiv 1911.05722, 2003.04297): facebookresearch/moco's moco/builder.py.
    SelfSupervised(
        "MoCo v1/v2", "encoder_q.", "query encoder", ("encoder_k.", "queue", "queue_ptr"),
        "its key encoder, queue and projection head", projection_fc=True,
    ),
    # MoCo v3 (arXiv 2104.02057), ResNet-50: facebookresearch/moco-v3's moco/builder.py.
    SelfSupervised(
        "MoCo v3", "base_encoder.", "base encoder", ("momentum_encoder.", "predictor."),
        "its momentum encoder, predictor and projection head", projection_fc=True,
    ),
    # SimSiam (arXiv 2011.10566): facebookresearch/simsiam's simsiam/builder.py.
    SelfSupervised(
        "SimSiam", "encoder.", "encoder", ("predictor.",), "its predictor and projector",
        projection_fc=True,
    ),
    # DINO (arXiv 2104.14294): facebookresearch/dino's MultiCropWrapper(backbone, DINOHead).
    SelfSupervised(
        "DINO", "backbone.", "backbone", ("head.mlp.", "head.last_layer."), "its DINO head"
    ),
    # Barlow Twins (arXiv 2103.03230): facebookresearch/barlowtwins's main.py.
    SelfSupervised(
        "Barlow Twins", "backbone.", "backbone", ("projector.", "bn."),
        "its projector and the loss's BatchNorm",
    ),
    # VICReg (arXiv 2105.04906): facebookresearch/vicreg's main_vicreg.py.
    SelfSupervised("VICReg", "backbone.", "backbone", ("projector.",), "its projector"),
    # SwAV and DeepCluster-v2 (arXiv 2006.09882): facebookresearch/swav's src/resnet50.py, the
    # trunk at the top level beside its head (``prototypes.weight``, or ``prototypes.prototypes0``).
    SelfSupervised(
        "SwAV", "", "trunk", ("projection_head.", "prototypes."),
        "its projection head and prototypes",
    ),
    # OpenMMLab's (mmselfsup 0.x/1.x, mmpretrain's selfsup: MoCo v2, SimCLR, BYOL, SimSiam, SwAV,
    # DenseCL, Barlow Twins ...): every algorithm keeps an mmpretrain ResNet (torchvision's
    # names) as ``backbone`` beside a projection ``neck``; the rest is the method's (momentum
    # encoders, queues, predictor heads). Its extract_backbone_weights.py keeps ``backbone.``.
    # A ``head.fc`` is a classifier's (mmpretrain's ImageClassifier), not a method's.
    SelfSupervised(
        "OpenMMLab mmselfsup/mmpretrain", "backbone.", "backbone", ("neck.",),
        "its neck, heads and momentum encoders",
        optional=("head.", "encoder_q.", "encoder_k.", "online_net.", "target_net.",
                  "momentum_encoder.", "queue", "queue_ptr", "queue2", "queue2_ptr",
                  "data_preprocessor."),
        never=("head.fc.",),
    ),
    # Not self-supervised, but a ResNet inside a larger module all the same: torchvision's
    # COCO-trained detectors (fasterrcnn_resnet50_fpn_coco-258fb6c6.pth, retinanet_*), their
    # ResNet in backbone.body (frozen BN statistics, no fc) beside the pyramid and the heads.
    SelfSupervised(
        "torchvision's Faster R-CNN", "backbone.body.", "ResNet",
        ("backbone.fpn.", "rpn.", "roi_heads."),
        "its feature pyramid, RPN and box head (resnet detect predict FILE IMAGE runs the whole "
        "detector)",
    ),
    SelfSupervised(
        "torchvision's RetinaNet", "backbone.body.", "ResNet", ("backbone.fpn.", "head."),
        "its feature pyramid and heads (resnet detect predict FILE IMAGE runs the whole detector)",
    ),
)  # fmt: skip


def pick_network(checkpoint: Mapping[str, Any]) -> tuple[Mapping[str, Any], str, str]:
    """The one network of a checkpoint that holds several, what it is and what was left out,
    in words; ``checkpoint``, "" and "" for any other.

    - DINO's full checkpoint (``student``, ``teacher``): the teacher, as DINO's evaluations load
      it (``--checkpoint_key teacher``);
    - a VISSL checkpoint (``classy_state_dict``): its trunk, as VISSL's
      ``convert_vissl_to_torchvision.py`` takes it (``base_model.model.trunk``, its modules
      under ``_feature_blocks.``), without the heads.
    """
    teacher, student = checkpoint.get("teacher"), checkpoint.get("student")
    if isinstance(teacher, Mapping) and isinstance(student, Mapping):
        return teacher, "its teacher network", "the student network"
    trunk: Any = checkpoint.get("classy_state_dict")
    for name in ("base_model", "model", "trunk"):
        trunk = trunk.get(name) if isinstance(trunk, Mapping) else None
    if isinstance(trunk, Mapping):
        trunk = {str(k).removeprefix("_feature_blocks."): v for k, v in trunk.items()}
        return trunk, "VISSL's trunk (classy_state_dict.base_model.model.trunk)", "its heads"
    return checkpoint, "", ""


def from_self_supervised(
    state: dict[str, Tensor], also_left_out: str = ""
) -> tuple[dict[str, Tensor], str]:
    """``state``'s network, if it is a known method's checkpoint, and what was kept and left
    out, in words (for ``LoadReport``); ``state`` and "" otherwise. ``also_left_out``: what
    ``pick_network`` left out before."""
    for method in METHODS:
        if not method.matches(set(state)):
            continue
        kept = {
            k.removeprefix(method.network): v
            for k, v in state.items()
            if k.startswith(method.network) and not method.owns(k)
        }
        if method.projection_fc:
            kept = {k: v for k, v in kept.items() if not k.startswith("fc.")}
        if "conv1.weight" not in kept:  # not a torchvision ResNet: left to the fit to name
            continue
        where = f" ({method.network.rstrip('.')})" if method.network else ""
        left_out = " and ".join(filter(None, (method.left_out, also_left_out)))
        return kept, f"{method.method}'s {method.role}{where}; {left_out} left out"
    return state, ""

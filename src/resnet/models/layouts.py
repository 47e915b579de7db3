"""Weight files in other projects' layouts: renamed to ours, with what their tensors assume.

Some files fit a model of this zoo key for key and shape for shape, yet mean another network:
BiT's tensors (convolutions that standardise their weights) fit a group-norm
``preact_resnet50``; SENet's and the paper's v1 (the stride on the first 1x1 conv) fit
``seresnet50`` and ``resnet50``; timm's anti-aliased ``resnetaa50d`` fits ``resnet50d`` (only
its ``config.json`` names it). Loading them there raises nothing and computes something else.
So each layout says which model options its tensors assume (``Assumption``), and
``check_assumptions`` compares them with the model's before anything loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from torch import Tensor, nn

from resnet.errors import WeightsError
from resnet.models.bit_names import from_bit_npz_names, is_bit_npz
from resnet.models.caffe_names import INPUT_NOTE, from_msra_caffe_names, is_caffe_blobs
from resnet.models.caffe_names import strides_first_1x1 as caffe_strides_first_1x1
from resnet.models.clip_names import (
    from_openai_clip_names,
    from_timm_clip_names,
    is_openai_clip,
    is_timm_clip,
)
from resnet.models.detectron2_names import (
    check_not_a_detectron2_detector,
    from_detectron2_names,
    is_detectron2_resnet,
)
from resnet.models.detectron_names import from_detectron_names, is_detectron_resnet
from resnet.models.gluon_names import (
    from_gluon_names,
    from_gluoncv_names,
    has_bottlenecks,
    is_gluon_resnet,
    is_gluon_v2,
    is_gluoncv_resnet,
)
from resnet.models.hf_names import (
    config_stride_in_1x1,
    from_transformers_names,
    is_transformers_resnet,
)
from resnet.models.keras_names import KERAS_SUFFIXES, from_keras_names, is_keras_resnet
from resnet.models.paddle_names import from_paddle_names, is_paddle_resnet, paddle_basic_blocks
from resnet.models.senet_names import (
    from_senet_names,
    has_basic_blocks,
    is_senet_legacy,
    strides_first_1x1,
)
from resnet.models.sequential_names import from_sequential_names, is_sequential_resnet
from resnet.models.timm_config import anti_alias_of, timm_architecture
from resnet.models.timm_v2_names import (
    from_timm_resnetv2_names,
    has_evonorm,
    is_timm_resnetv2,
    standardizes_weights,
)
from resnet.models.video_names import (
    describe_video_net,
    from_torchvision_video_names,
    is_torchvision_video_resnet,
    video_convs,
)

__all__ = [
    "OPTION_DEFAULTS",
    "Assumption",
    "from_other_layout",
    "input_conversion",
    "torchvision_net",
    "assumptions_of",
    "check_assumptions",
]

# The value of each option in a model that does not have the attribute (not a ResNet).
# Only options that change what the weights compute everywhere: a stem pool of another kind
# (stem_pool="none" for small images, Caffe's ceil-mode pool) is a fine-tuner's legitimate choice.
OPTION_DEFAULTS = {
    "weight_standardization": False,
    "stride_in_1x1": False,
    "anti_alias": None,
    "relu_before_attn": False,
    "project_first_shortcut": False,
    "input_norm": False,
    "video_convs": None,
}


@dataclass(frozen=True)
class Assumption:
    """The file's tensors compute what they were trained to only where ``option == value``."""

    option: str
    value: Any
    what: str  # the file's kind and the model it loads into, for the message


# Files whose format promises a layout: anything else in them is refused, by what it holds.
_PROMISED = {
    ".npz": (
        is_bit_npz,
        "an .npz without BiT's resnet/root_block",
        "weights come as .pth, .safetensors, BiT's .npz, Caffe's .caffemodel, Keras's .h5, "
        "Detectron's .pkl, PaddleClas's .pdparams, MXNet's .params or the ONNX model zoo's "
        ".onnx, and an .npz of images is a --dataset",
    ),
    ".pdparams": (
        is_paddle_resnet,
        "a .pdparams whose arrays are not in PaddleClas's ResNet names",
        "expected stem.0.conv.weight, blocks.0.conv0.conv.weight, ...",
    ),
    ".params": (
        lambda state: is_gluon_resnet(state) or is_gluoncv_resnet(state),
        "an MXNet .params file whose arrays are not in Gluon's or GluonCV's ResNet names",
        "expected conv0_weight or features.0.weight (Gluon's model zoo), or conv1.weight, "
        "bn1.gamma, layer1.0.conv1.weight (GluonCV's resnet*_v1b/c/d/s)",
    ),
    ".onnx": (
        is_gluon_resnet,
        "an ONNX model whose weights are not in Gluon's ResNet names (the ONNX model zoo's "
        "resnet*-v1 and -v2)",
        "expected resnetv17_conv0_weight, resnetv17_stage1_conv0_weight, ...; a model `resnet "
        "export` wrote is run as it is (resnet eval/predict --checkpoint FILE.onnx), and its "
        "run's checkpoint holds its weights",
    ),
    ".pkl": (
        lambda state: is_detectron_resnet(state) or is_detectron2_resnet(state),
        "a pickle whose arrays are not in Detectron's or detectron2's ResNet names",
        "expected conv1_w, res_conv1_bn_s, res2_0_branch2a_w, ... (MSRA's R-50.pkl) or "
        "stem.conv1.weight, res2.0.conv1.weight, ... (a torchvision net converted for detectron2)",
    ),
    **{
        suffix: (
            is_keras_resnet,
            "a Keras file whose layers are not keras.applications' ResNet50/101/152's",
            "expected conv1_conv, conv2_block1_1_conv, ...",
        )
        for suffix in KERAS_SUFFIXES
    },
}


def from_other_layout(
    state: dict[str, Tensor], path: Optional[Path], label: str
) -> tuple[dict[str, Tensor], list[Assumption]]:
    """``state`` in our names (unchanged if in none of the known layouts) and its assumptions."""
    check_not_a_detectron2_detector(state, label)
    promised = _PROMISED.get(path.suffix) if path is not None else None
    if promised is not None and not promised[0](state):
        raise WeightsError(
            f"{label}: {promised[1]} (its first: {', '.join(list(state)[:3])}); {promised[2]}"
        )
    if is_caffe_blobs(state):
        return from_msra_caffe_names(state, label), _caffe(caffe_strides_first_1x1(state))
    if is_keras_resnet(state):
        keras = "Keras's ResNet50/101/152 (keras.applications: the paper's v1"
        return from_keras_names(state, label), _paper_v1(keras)
    if is_detectron_resnet(state):
        detectron = "Detectron's ImageNet ResNet (MSRA's R-50.pkl, detectron2's STRIDE_IN_1X1"
        return from_detectron_names(state, label), _paper_v1(detectron)
    if is_detectron2_resnet(state):
        converted = (
            "a torchvision ResNet converted for detectron2 (convert-torchvision-to-d2.py, MoCo's "
            "convert-pretrain-to-detectron2.py: load it into the torchvision model of its depth)"
        )
        return from_detectron2_names(state, label), torchvision_net(converted)
    if is_gluon_resnet(state):
        renamed = from_gluon_names(state, label)
        if is_gluon_v2(state):
            v2 = (
                "Gluon's ResNet v2 (MXNet's model zoo resnet*_v2, the ONNX zoo's resnet50-v2-7: "
                "load it into gluon_resnet50_v2, or the gluon_resnet*_v2 of its depth)"
            )
            return renamed, [Assumption("input_norm", True, v2)]
        gluon = "Gluon's ResNet v1 (MXNet's model zoo, the ONNX zoo's resnet50-v1-7: the paper's v1"
        return renamed, _paper_v1(gluon) if has_bottlenecks(state) else []
    if is_gluoncv_resnet(state):
        gluoncv = (
            "GluonCV's resnet*_v1b/c/d/s (load v1b into resnet50, v1c into resnet50c, v1d into "
            "resnet50d, v1s into resnet50s, built with the defaults)"
        )
        return from_gluoncv_names(state), torchvision_net(gluoncv)
    if is_paddle_resnet(state):
        basic = paddle_basic_blocks(state)
        paddle = (
            "PaddleClas's ResNet-18/34 (ResNet18: load it into resnet18; ResNet18_vd: resnet18d; "
            'built with project_first_shortcut=True, e.g. --set "model_kwargs='
            '{project_first_shortcut: true}")'
            if basic
            else "PaddleClas's ResNet (ResNet50_pretrained: load it into resnet50; ResNet50_vd: "
            "resnet50d; built with the defaults)"
        )
        projected = [Assumption("project_first_shortcut", True, paddle)] if basic else []
        return from_paddle_names(state, label), [*torchvision_net(paddle), *projected]
    if is_bit_npz(state):
        bit = "a BiT checkpoint (BiT-M-R50x1.npz: load it into the bit_resnet of its size)"
        return from_bit_npz_names(state), [Assumption("weight_standardization", True, bit)]
    if is_transformers_resnet(state):
        stride_in_1x1 = config_stride_in_1x1(path, label)
        found = [] if stride_in_1x1 is None else [_transformers_stride(stride_in_1x1)]
        return from_transformers_names(state), found
    if is_timm_resnetv2(state):
        found = _timm_v2(standardizes_weights(state), has_evonorm(state))
        return from_timm_resnetv2_names(state, label), [found]
    if is_senet_legacy(state):
        senet = "a file of SENet's own nets (timm's legacy_se*: load it into the legacy_se* model)"
        renamed = from_senet_names(state, label)
        found = [Assumption("stride_in_1x1", strides_first_1x1(state), senet)]
        return renamed, [*found, Assumption("relu_before_attn", has_basic_blocks(state), senet)]
    clip = "a CLIP ResNet (load it into the resnet*_clip model of its size: RN50 -> resnet50_clip)"
    if is_openai_clip(state):
        return from_openai_clip_names(state, label), [Assumption("anti_alias", "avg", clip)]
    if is_timm_clip(state):
        return from_timm_clip_names(state), [Assumption("anti_alias", "avg", clip)]
    if is_torchvision_video_resnet(state):
        convs = video_convs(state)
        found = Assumption("video_convs", convs, describe_video_net(convs))
        return from_torchvision_video_names(state), [found]
    if is_sequential_resnet(state):
        sequential = (
            "a torchvision ResNet saved as nn.Sequential of its children (RadImageNet's "
            "ResNet50.pt: load it into the torchvision model of its depth)"
        )
        return from_sequential_names(state), torchvision_net(sequential)
    architecture = timm_architecture(path)
    if architecture is None:
        return state, []
    what = f"timm's {architecture} (its config.json names it: load it into that model)"
    return state, [Assumption("anti_alias", anti_alias_of(architecture), what)]


def input_conversion(state: dict[str, Tensor]) -> str:
    """What ``from_other_layout`` changes of the input ``state``'s weights expect ("" if
    nothing): Caffe's (and Keras's "caffe" mode's, and Detectron's) BGR 0-255 input becomes
    torchvision's (``caffe_names``, ``keras_names``, ``detectron_names``)."""
    caffe_input = is_caffe_blobs(state) or is_keras_resnet(state) or is_detectron_resnet(state)
    return INPUT_NOTE if caffe_input else ""


def torchvision_net(what: str) -> list[Assumption]:
    """What the tensors of a torchvision ResNet (however renamed) assume of the model: the
    stride on the 3x3 (v1.5), no anti-aliasing."""
    return [Assumption("stride_in_1x1", False, what), Assumption("anti_alias", None, what)]


def _paper_v1(kind: str) -> list[Assumption]:
    what = (
        f"{kind}; load it into resnet50/101/152 built with stride_in_1x1=True, e.g. --set "
        '"model_kwargs={stride_in_1x1: true}")'
    )
    return [Assumption("stride_in_1x1", True, what)]


def _caffe(bottlenecks: bool) -> list[Assumption]:
    if not bottlenecks:  # basic blocks stride their first 3x3 in every layout
        return []
    what = (
        "the paper's own Caffe ResNet (MSRA's ResNet-50/101/152-model.caffemodel: load it into "
        "resnet50/101/152 built with stride_in_1x1=True, and stem_pool='max_ceil' to pool as "
        'Caffe did, e.g. --set "model_kwargs={stride_in_1x1: true, stem_pool: max_ceil}")'
    )
    return [Assumption("stride_in_1x1", True, what)]


def _transformers_stride(stride_in_1x1: bool) -> Assumption:
    kind = "the paper's v1" if stride_in_1x1 else "torchvision's v1.5"
    what = (
        f"a transformers ResNet whose config.json builds {kind} (load it into a model built "
        f'with stride_in_1x1={stride_in_1x1}, e.g. --set "model_kwargs={{stride_in_1x1: '
        f'{str(stride_in_1x1).lower()}}}")'
    )
    return Assumption("stride_in_1x1", stride_in_1x1, what)


def _timm_v2(standardized: bool, evonorm: bool) -> Assumption:
    what = (
        "a BiT file (timm's resnetv2_*_bit: load it into the bit_resnet of its size, "
        "resnetv2_50x1_bit -> bit_resnet50x1)"
        if standardized
        else "a timm ResNetV2 with EvoNorm-S0 (resnetv2_50d_evos: load it into preact_resnet50d "
        "built with norm_layer='evonorm_s0', e.g. --set \"model_kwargs={norm_layer: evonorm_s0}\")"
        if evonorm
        else "a timm ResNetV2 (resnetv2_*: load it into the preact_resnet of its name)"
    )
    return Assumption("weight_standardization", standardized, what)


def assumptions_of(model: nn.Module, what: str) -> list[Assumption]:
    """What weights saved from ``model`` assume: its values of the options above (a run's own
    checkpoint, whose names are ours, says nothing else about them)."""
    return [
        Assumption(option, getattr(model, option, default), what)
        for option, default in OPTION_DEFAULTS.items()
    ]


def check_assumptions(assumptions: list[Assumption], model: nn.Module, label: str) -> None:
    """``WeightsError`` naming the first option ``model`` has otherwise than the file assumes."""
    for assumption in assumptions:
        value = getattr(model, assumption.option, OPTION_DEFAULTS[assumption.option])
        if value != assumption.value:
            name = getattr(model, "model_name", type(model).__name__)
            raise WeightsError(
                f"{label}: {assumption.what}; its tensors assume {assumption.option}="
                f"{assumption.value!r} and {name} has {value!r}, so they would compute "
                "another network there"
            )

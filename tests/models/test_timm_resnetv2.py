"""timm's ResNetV2 files load into our pre-activation nets and compute what timm computes.

timm keeps ResNetV2 in another module layout (``stem``, ``stages.S.blocks.B``, a 1x1-conv head),
so these go through ``load_weights``' renaming, not a strict ``load_state_dict``; the nets no
model here computes (BiT's weight-standardised convolutions, EvoNorm, FRN) must be refused.
"""

import pytest
import timm  # a dev dependency: the parity tests never skip
import torch
from parity_helpers import randomise_norms

from resnet import create_model, load_weights
from resnet.errors import WeightsError
from resnet.models.timm_v2_names import TIMM_RESNETV2

pytestmark = pytest.mark.usefixtures("one_thread")
# Float32 through up to 152 blocks: the measured differences are 1e-7 to 5e-7 of the logits.
TOLERANCE = 1e-5


def _reference(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    reference = timm.create_model(name, pretrained=False).eval()
    randomise_norms(reference)
    for module in reference.modules():  # group norms too (randomise_norms covers BN only)
        if isinstance(module, torch.nn.GroupNorm):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    return reference


def _relative_difference(ours: torch.nn.Module, reference: torch.nn.Module, side: int) -> float:
    # Pre-activation blocks add without normalising, so deep nets' logits reach 1e5 here.
    torch.manual_seed(1)
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        expected = reference(x)
        return ((ours(x) - expected).abs().max() / expected.abs().max()).item()


def _load_and_compare(timm_name: str, ours_name: str, **kwargs) -> float:
    reference = _reference(timm_name)
    ours = create_model(ours_name, **kwargs)
    report = load_weights(ours, reference.state_dict())
    assert report.loaded == len(reference.state_dict())
    assert not (report.dropped_classifier or report.backbone_only or report.adapted_conv1)
    side = 32 if any(d in timm_name for d in ("101", "152")) else 64
    return _relative_difference(ours.eval(), reference, side)


@pytest.mark.parametrize("timm_name", sorted(TIMM_RESNETV2))
def test_timm_resnetv2_files_load_into_the_preact_nets(timm_name):
    difference = _load_and_compare(timm_name, TIMM_RESNETV2[timm_name])
    assert difference < TOLERANCE, f"{timm_name}: relative difference {difference}"


def test_the_group_norm_net_is_preact_resnet50d_with_group_norm():
    difference = _load_and_compare("resnetv2_50d_gn", "preact_resnet50d", norm_layer="group")
    assert difference < TOLERANCE


def test_the_comparison_sees_one_changed_statistic():
    reference = _reference("resnetv2_18")
    ours = create_model("preact_resnet18").eval()
    load_weights(ours, reference.state_dict())
    assert _relative_difference(ours, reference, 64) < TOLERANCE
    with torch.no_grad():  # raised, so the ReLU after it cannot hide the change
        ours.layer3[1].bn2.bias[0] += 2.0
    assert _relative_difference(ours, reference, 64) > TOLERANCE


def test_a_headless_file_and_a_grey_stem_load_too():
    state = _reference("resnetv2_18d").state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith("head.")}
    report = load_weights(create_model("preact_resnet18d", in_chans=1), backbone)
    assert report.backbone_only and report.adapted_conv1


@pytest.mark.parametrize(
    ("timm_name", "words", "group_norm"),
    [
        # Once renamed, BiT's every key and shape fits a group-norm preact_resnet50: only the
        # refusal keeps its tensors out of a net without weight standardisation.
        ("resnetv2_50x1_bit", "weight-standardised", True),
        ("resnetv2_50d_evos", "EvoNorm", False),
        ("resnetv2_50d_frn", "FilterResponseNorm", False),
    ],
)
def test_nets_no_model_here_computes_are_refused_by_name(timm_name, words, group_norm):
    with torch.device("meta"):
        state = timm.create_model(timm_name, pretrained=False).state_dict()
    target = "preact_resnet50" if group_norm else "preact_resnet50d"
    model = create_model(target, norm_layer="group" if group_norm else None)
    with pytest.raises(WeightsError, match=words):
        load_weights(model, state)


def test_the_wrong_stem_is_a_key_error_not_a_silent_load():
    state = _reference("resnetv2_18d").state_dict()
    with pytest.raises(WeightsError, match="does not fit model preact_resnet18"):
        load_weights(create_model("preact_resnet18"), state)

"""timm's ResNet family equals ours: same keys and shapes (strict load), same outputs.

Each variant (ResNet-C/D/T, SE, ECA, ResNeXt, ResNet-RS) is an option of our one ``ResNet``;
this file is what shows the options build exactly timm's networks.
"""

import pytest
import timm  # a dev dependency: the parity tests never skip
import torch
from parity_helpers import timm_reference

from resnet import create_model, load_weights
from resnet.models.resnet_d import RESNET_D_VARIANTS
from resnet.models.senet import ATTENTION_VARIANTS

pytestmark = pytest.mark.usefixtures("one_thread")

# The torchvision names are timm's too; the deep ones are compared with torchvision elsewhere.
SHARED_NAMES = ("resnet18", "resnet50", "resnext50_32x4d")
TIMM_NAMES = sorted(RESNET_D_VARIANTS) + sorted(ATTENTION_VARIANTS) + list(SHARED_NAMES)
# Hundreds of millions of parameters: filling them with random numbers would dominate the suite.
# Their code is that of a compared sibling (resnext101_32x4d with wider groups, resnetrs200 with
# more blocks), so only their keys and shapes are compared, built on the "meta" device.
SHAPES_ONLY = (
    "ecaresnet269d",  # ecaresnet101d with more blocks
    "seresnext101_32x8d",  # seresnext101_32x4d, wider groups (and its D net)
    "seresnext101d_32x8d",
    "seresnext101_64x4d",  # more groups
    "resnext101_32x16d",
    "resnext101_32x32d",
    "resnetrs270",
    "resnetrs350",
    "resnetrs420",
)
# Deep nets are compared at 32x32, the rest at 64x64 (where SE/ECA pool over more than 1 pixel).
DEEP_MARKERS = ("101", "152", "200", "269", "270", "350", "420")


def _max_abs_diff(ours: torch.nn.Module, reference: torch.nn.Module, side: int) -> float:
    torch.manual_seed(1)
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        return (ours(x) - reference(x)).abs().max().item()


@pytest.mark.parametrize("name", [n for n in TIMM_NAMES if n not in SHAPES_ONLY])
def test_timm_weights_load_strictly_and_outputs_agree(name):
    reference = timm_reference(name)
    with torch.device("meta"):  # no time spent on our own random init: the weights are timm's
        ours = create_model(name).eval()
    reference_state = reference.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference_state.items()
    }
    ours.load_state_dict(reference_state, strict=True, assign=True)
    side = 32 if any(marker in name for marker in DEEP_MARKERS) else 64
    diff = _max_abs_diff(ours, reference, side)
    assert diff < 1e-4, f"{name}: max abs difference {diff}"


@pytest.mark.parametrize("name", SHAPES_ONLY)
def test_huge_timm_models_have_equal_keys_and_shapes(name):
    with torch.device("meta"):
        reference = timm.create_model(name, pretrained=False)
        ours = create_model(name)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_the_comparison_sees_one_changed_statistic():
    reference = timm_reference("ecaresnet26t")
    ours = create_model("ecaresnet26t").eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert _max_abs_diff(ours, reference, 64) == 0.0
    ours.layer3[1].bn2.running_var[0] += 0.5
    assert _max_abs_diff(ours, reference, 64) > 1e-4


@pytest.mark.parametrize(
    ("name", "others"),
    [("resnet50d", ("resnet50", "resnet50c", "resnet50t")), ("seresnet50", ("ecaresnet50d",))],
)
def test_variants_are_told_apart_by_their_keys(name, others):
    def shapes(model_name):
        with torch.device("meta"):
            return {k: v.shape for k, v in create_model(model_name).state_dict().items()}

    for other in others:
        assert shapes(other) != shapes(name), other


def test_a_deep_stem_is_adapted_to_grey_input():
    reference = timm_reference("resnet18d")
    ours = create_model("resnet18d", in_chans=1).eval()
    report = load_weights(ours, reference.state_dict())
    assert report.adapted_conv1
    grey = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(grey), reference(grey.repeat(1, 3, 1, 1)))

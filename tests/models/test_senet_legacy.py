"""SENet's own nets (timm's ``legacy_se*``, Cadene's pretrainedmodels) load into ``legacy_se*``.

Their files fit timm's current ``seresnet50`` key for key once renamed, but the nets pool,
squeeze and stride otherwise (``senet_names.py``): loading there would compute another network,
so it is refused, and the ``legacy_se*`` models build what the files mean.
"""

import pytest
import torch
from parity_helpers import (
    randomise_norms,
    relative_difference,
    timm_reference,
    timm_state_on_meta,
)

from resnet import create_model, load_weights
from resnet.errors import ConfigError, WeightsError
from resnet.models.senet import LEGACY_SE_VARIANTS

pytestmark = pytest.mark.usefixtures("one_thread")
TOLERANCE = 1e-9  # float64


# The 101 and 152 nets are their 50 siblings with more blocks: keys and shapes are compared.
# SENet-154 too; its blocks, stem and projections are compared one block a stage (below).
DEEP = [name for name in LEGACY_SE_VARIANTS if any(depth in name for depth in ("101", "15"))]


@pytest.mark.parametrize("name", DEEP)
def test_deep_senets_have_timms_keys_and_shapes(name):
    from resnet.models.senet_names import from_senet_names

    renamed = from_senet_names(timm_state_on_meta(name), name)
    with torch.device("meta"):
        ours = create_model(name)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in renamed.items()
    }


@pytest.mark.parametrize("name", sorted(set(LEGACY_SE_VARIANTS) - set(DEEP)))
def test_senets_own_files_give_timms_outputs(name):
    reference = timm_reference(name)
    ours = create_model(name)
    report = load_weights(ours, reference.state_dict())
    assert report.describe() == f"{len(reference.state_dict())} tensors loaded; fc included"
    # An odd side: Caffe's ceil-mode pool then covers one more row than a padded one would.
    assert relative_difference(ours.eval(), reference, 65) < TOLERANCE


@pytest.mark.parametrize(("option", "other"), [("stem_pool", "max"), ("stride_in_1x1", False)])
def test_each_legacy_option_changes_what_the_tensors_compute(option, other):
    reference = timm_reference("legacy_seresnet50")
    changed = create_model("legacy_seresnet50", **{option: other})
    # Past load_weights' refusal: the same tensors, strictly, into the other net.
    changed.load_state_dict(_ours_from(reference), strict=True)
    assert relative_difference(changed.eval(), reference, 65) > 1e-3


def _ours_from(reference: torch.nn.Module) -> dict:
    from resnet.models.senet_names import from_senet_names

    return from_senet_names(reference.state_dict(), "legacy")


def test_timms_current_seresnet_refuses_a_legacy_file():
    state = timm_reference("legacy_seresnet50").state_dict()
    with pytest.raises(WeightsError, match="assume stride_in_1x1=True and seresnet50 has False"):
        load_weights(create_model("seresnet50"), state)
    # The stem pool is the fine-tuner's to choose (none for small images): it loads.
    load_weights(create_model("legacy_seresnet50", stem_pool="none"), state)
    with pytest.raises(ConfigError, match="contradicts stem_pool='max_ceil'.*stem_pool='none'"):
        create_model("legacy_seresnet50", no_max_pool=True)
    v15 = create_model("legacy_seresnet50", stride_in_1x1=False)
    with pytest.raises(WeightsError, match="stride_in_1x1=True and legacy_seresnet50 has False"):
        load_weights(v15, state)


def test_senet154s_blocks_stem_and_projections_give_timms_outputs():
    """SENet-154 one block a stage: timm's SENet class with legacy_senet154's arguments, its
    state_dict loaded into ours through load_weights (the full depth: the keys test above)."""
    from timm.models.senet import SEBottleneck, SENet

    from resnet.models.resnet import ResNet

    block, _, options, _ = LEGACY_SE_VARIANTS["legacy_senet154"]
    torch.manual_seed(0)
    arguments = {"downsample_kernel_size": 3, "downsample_padding": 1, "input_3x3": True}
    reference = SENet(SEBottleneck, [1, 1, 1, 1], 64, 16, inplanes=128, **arguments).eval()
    randomise_norms(reference)
    ours = ResNet(block, [1, 1, 1, 1], **options)
    report = load_weights(ours, reference.state_dict())
    assert report.describe() == f"{len(reference.state_dict())} tensors loaded; fc included"
    assert relative_difference(ours.eval(), reference, 65) < TOLERANCE


def test_senet154_has_its_papers_parameter_count():
    """115.1M, as timm's legacy_senet154."""
    with torch.device("meta"):
        ours = create_model("legacy_senet154")
    assert round(sum(v.numel() for v in ours.parameters()) / 1e6, 1) == 115.1


def test_first_conv_ratio_refuses_what_it_cannot_build():
    with pytest.raises(ConfigError, match="first_conv_ratio narrows a Bottleneck's first 1x1"):
        create_model("resnet18", first_conv_ratio=0.5)
    with pytest.raises(ConfigError, match=r"a number in \(0, 1\] for Bottleneck, got 2"):
        create_model("resnet50", first_conv_ratio=2)
    for bad in ("0.5", True, 0, -1):
        with pytest.raises(ConfigError, match="first_conv_ratio narrows a Bottleneck's first 1x1"):
            create_model("resnet50", first_conv_ratio=bad)
    with pytest.raises(ConfigError, match="which the 3x3's 64 groups do not divide"):
        create_model("legacy_senet154", first_conv_ratio=0.3)


def test_legacy_se_resnet18_activates_before_se_and_squeezes_unrounded():
    """Its file fits a net that activates after SE only where the SE widths agree; the
    activation's place is checked, and the 4-channel squeeze of 64 is SENet's, not timm's 8."""
    state = timm_reference("legacy_seresnet18").state_dict()
    assert state["layer1.0.se_module.fc1.weight"].shape[0] == 4
    after = create_model("legacy_seresnet18", relu_before_attn=False)
    with pytest.raises(WeightsError, match="relu_before_attn=True and legacy_seresnet18 has False"):
        load_weights(after, state)
    with pytest.raises(WeightsError, match=r"se.fc1.weight \(4, 64, 1, 1\) vs \(8, 64, 1, 1\)"):
        load_weights(create_model("seresnet18", relu_before_attn=True, stem_pool="max_ceil"), state)
    reference = timm_reference("legacy_seresnet18")
    after.load_state_dict(_ours_from(reference), strict=True)  # past the refusal
    assert relative_difference(after.eval(), reference, 65) > 1e-3


def test_the_options_refuse_what_they_cannot_build():
    with pytest.raises(ConfigError, match="not to BasicBlock"):
        create_model("resnet18", stride_in_1x1=True)
    with pytest.raises(ConfigError, match="relu_before_attn applies to basic blocks with"):
        create_model("resnet18", relu_before_attn=True)
    with pytest.raises(ConfigError, match="not to Bottleneck"):
        create_model("seresnet50", relu_before_attn=True)
    with pytest.raises(ConfigError, match="stem_pool must be one of"):
        create_model("legacy_seresnet50", stem_pool="ceil")

"""timm's ResNetV2 files load into our pre-activation nets and compute what timm computes.

timm keeps ResNetV2 in another module layout (``stem``, ``stages.S.blocks.B``, a 1x1-conv head),
so these go through ``load_weights``' renaming, not a strict ``load_state_dict``. BiT's files
need the weight-standardised ``bit_resnet*``, the EvoNorm net ``norm_layer="evonorm_s0"``; FRN
nets have no model here.
"""

import numpy as np
import pytest
import timm  # a dev dependency: the parity tests never skip
import torch
from parity_helpers import relative_difference, timm_reference, timm_state_on_meta

from resnet import create_model, load_weights
from resnet.errors import ConfigError, WeightsError
from resnet.models.timm_v2_names import TIMM_RESNETV2, from_timm_resnetv2_names

pytestmark = pytest.mark.usefixtures("one_thread")
# Float64 through up to 152 blocks.
TOLERANCE = 1e-9


def _load_and_compare(timm_name: str, ours_name: str, **kwargs) -> float:
    reference = timm_reference(timm_name)
    ours = create_model(ours_name, **kwargs)
    report = load_weights(ours, reference.state_dict())
    assert report.loaded == len(reference.state_dict())
    assert not (report.dropped_classifier or report.backbone_only or report.adapted_conv1)
    return relative_difference(ours.eval(), reference, 64)


# The deep and wide nets share their code with a compared sibling of depth 18 to 50 (BiT's
# wide ones have 217M to 936M parameters): their keys and shapes are compared on the meta device.
SHAPES_ONLY = [name for name in TIMM_RESNETV2 if "101" in name or "152" in name or "x3" in name]


@pytest.mark.parametrize("timm_name", sorted(set(TIMM_RESNETV2) - set(SHAPES_ONLY)))
def test_timm_resnetv2_files_load_into_the_preact_nets(timm_name):
    difference = _load_and_compare(timm_name, TIMM_RESNETV2[timm_name])
    assert difference < TOLERANCE, f"{timm_name}: relative difference {difference}"


def test_the_group_norm_net_is_preact_resnet50d_with_group_norm():
    difference = _load_and_compare("resnetv2_50d_gn", "preact_resnet50d", norm_layer="group")
    assert difference < TOLERANCE


def test_the_comparison_sees_one_changed_statistic():
    reference = timm_reference("resnetv2_18")
    ours = create_model("preact_resnet18").eval()
    load_weights(ours, reference.state_dict())
    assert relative_difference(ours, reference, 64) < TOLERANCE
    with torch.no_grad():  # raised, so the ReLU after it cannot hide the change
        ours.layer3[1].bn2.bias[0] += 2.0
    assert relative_difference(ours, reference, 64) > TOLERANCE


def test_a_headless_file_and_a_grey_stem_load_too():
    state = timm_reference("resnetv2_18d").state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith("head.")}
    report = load_weights(create_model("preact_resnet18d", in_chans=1), backbone)
    assert report.backbone_only and report.adapted_conv1


@pytest.mark.parametrize("timm_name", SHAPES_ONLY)
def test_deep_and_wide_nets_have_timms_keys_and_shapes(timm_name):
    state = timm_state_on_meta(timm_name)
    with torch.device("meta"):
        ours = create_model(TIMM_RESNETV2[timm_name])
    renamed = from_timm_resnetv2_names(state, timm_name)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in renamed.items()
    }


def test_standardised_weights_and_the_zero_padded_pool_are_what_make_bit_bit():
    # A BiT file fits a group-norm preact_resnet50 key for key; only standardising computes it,
    # and a max-pool padding with -inf instead of zeros differs where the stem's output is < 0.
    reference = timm_reference("resnetv2_50x1_bit")
    state = from_timm_resnetv2_names(reference.state_dict(), "bit")
    nets = {
        "bit": create_model("bit_resnet50x1"),
        "plain convs": create_model("preact_resnet50", norm_layer="group"),
        "max pool": create_model("bit_resnet50x1", stem_pool="max"),
    }
    differences = {}
    for name, net in nets.items():
        net.load_state_dict(state)
        differences[name] = relative_difference(net.eval(), reference, 64)
    assert differences["bit"] < TOLERANCE
    assert differences["plain convs"] > 0.01 and differences["max pool"] > 1e-6, differences


@pytest.mark.parametrize(
    ("timm_name", "target", "words"),
    [
        ("resnetv2_50x1_bit", "preact_resnet50", "load it into the bit_resnet"),
        ("resnetv2_50d_gn", "preact_resnet50d", "load it into the preact_resnet"),
    ],
)
def test_files_are_refused_by_a_net_that_standardises_otherwise(timm_name, target, words):
    state = timm.create_model(timm_name, pretrained=False).state_dict()
    standardizes = timm_name.endswith("_bit")
    model = create_model(target, norm_layer="group", weight_standardization=not standardizes)
    with pytest.raises(WeightsError, match=words):
        load_weights(model, state)


def test_the_evonorm_net_is_preact_resnet50d_with_evonorm_s0():
    """resnetv2_50d_evos: EvoNorm-S0 (norm and activation in one) in place of BN and ReLU; its
    weight, bias and v randomised so that a misplaced or missing one shows."""
    reference = timm_reference("resnetv2_50d_evos")
    with torch.no_grad():
        for module in reference.modules():
            if type(module).__name__ == "EvoNorm2dS0":
                module.weight.uniform_(0.5, 1.5), module.bias.uniform_(-0.2, 0.2)
                module.v.uniform_(0.5, 1.5)
    ours = create_model("preact_resnet50d", norm_layer="evonorm_s0")
    assert load_weights(ours, reference.state_dict()).loaded == len(reference.state_dict())
    assert relative_difference(ours.eval(), reference, 64) < TOLERANCE
    with torch.no_grad():
        ours.layer2[0].bn2.v[0] += 1.0
    assert relative_difference(ours, reference, 64) > TOLERANCE
    # The batch-norm net is told which net the file is.
    with pytest.raises(WeightsError, match="EvoNorm-S0 .*norm_layer='evonorm_s0'"):
        load_weights(create_model("preact_resnet50d"), reference.state_dict())
    with pytest.raises(ConfigError, match="activates as it normalises.*preact_resnet"):
        create_model("resnet50", norm_layer="evonorm_s0")


def test_filter_response_norm_nets_are_refused_by_name():
    state = timm_state_on_meta("resnetv2_50d_frn")
    with pytest.raises(WeightsError, match="FilterResponseNorm"):
        load_weights(create_model("preact_resnet50d"), state)


def test_the_wrong_stem_is_a_key_error_not_a_silent_load():
    state = timm_reference("resnetv2_18d").state_dict()
    with pytest.raises(WeightsError, match="does not fit model preact_resnet18"):
        load_weights(create_model("preact_resnet18"), state)
    # A post-activation net: the keys do not fit, and the error names the nets that fit.
    plain = timm_reference("resnetv2_18").state_dict()
    with pytest.raises(WeightsError, match="does not fit model resnet18.*a timm ResNetV2 .*"
                       "load it into the preact_resnet of its name"):  # fmt: skip
        load_weights(create_model("resnet18"), plain)


def _bit_npz(state: dict, path) -> None:
    """``state`` (timm's names) written as google-research/big_transfer's ``.npz``: TensorFlow
    names, HWIO kernels, the head a 1x1 conv kernel."""
    arrays = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        parts = key.split(".")
        if parts[0] == "stages":
            unit = f"resnet/block{int(parts[1]) + 1}/unit{int(parts[3]) + 1:02d}/"
            module, leaf = parts[4], parts[-1]
            if module == "downsample":
                name = unit + "a/proj/standardized_conv2d/kernel"
            else:
                letter = "abc"[int(module[-1]) - 1]
                kind = "standardized_conv2d/kernel" if module.startswith("conv") else None
                kind = kind or f"group_norm/{'gamma' if leaf == 'weight' else 'beta'}"
                name = f"{unit}{letter}/{kind}"
        else:
            name = {
                "stem.conv.weight": "resnet/root_block/standardized_conv2d/kernel",
                "norm.weight": "resnet/group_norm/gamma",
                "norm.bias": "resnet/group_norm/beta",
                "head.fc.weight": "resnet/head/conv2d/kernel",
                "head.fc.bias": "resnet/head/conv2d/bias",
            }[key]
        array = value.numpy()
        arrays[name] = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array
    np.savez(path, **arrays)


def test_googles_bit_npz_loads_as_timm_reads_it(tmp_path):
    reference = timm_reference("resnetv2_50x1_bit")
    _bit_npz(reference.state_dict(), tmp_path / "BiT-M-R50x1.npz")
    # timm's own reader of the original files is the reference for the layout.
    timm_read = timm.create_model("resnetv2_50x1_bit", pretrained=False).eval()
    timm_read.load_pretrained(str(tmp_path / "BiT-M-R50x1.npz"))
    ours = create_model("bit_resnet50x1")
    report = load_weights(ours, tmp_path / "BiT-M-R50x1.npz")
    assert report.describe() == "153 tensors loaded; fc included"
    assert relative_difference(ours.eval(), timm_read, 64) < TOLERANCE
    assert relative_difference(ours, reference, 64) < TOLERANCE
    with pytest.raises(WeightsError, match="load it into the bit_resnet"):
        load_weights(
            create_model("preact_resnet50", norm_layer="group"), tmp_path / "BiT-M-R50x1.npz"
        )

"""MONAI's 3D ResNets and MedicalNet's backbones load into ours and give the same outputs."""

import pytest
import torch
from monai.networks import nets  # a dev dependency: the parity tests never skip
from parity_helpers import randomise_norms

from resnet.models import create_model, load_weights

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise_norms(model: torch.nn.Module) -> None:
    torch.manual_seed(2)
    randomise_norms(model)


def _max_abs_diff(ours, reference, x) -> float:
    with torch.no_grad():
        return (ours.eval()(x) - reference.eval()(x)).abs().max().item()


@pytest.mark.parametrize("depth", [10, 18, 50])
def test_monai_state_dict_loads_strictly_and_outputs_agree(depth):
    torch.manual_seed(0)
    # MONAI's defaults (shortcut B with a biased projection, 7^3 stride-1 stem, 400 classes).
    reference = getattr(nets, f"resnet{depth}")(spatial_dims=3, n_input_channels=1)
    _randomise_norms(reference)
    ours = create_model(f"resnet{depth}_3d", in_chans=1, num_classes=400)
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 1, 32, 32, 32)
    diff = _max_abs_diff(ours, reference, x)
    assert diff < 1e-4, f"resnet{depth}: max abs difference {diff}"


@pytest.mark.parametrize("depth", [34, 101, 152])
def test_deeper_monai_nets_have_equal_keys_and_shapes(depth):
    with torch.device("meta"):
        reference = getattr(nets, f"resnet{depth}")(spatial_dims=3, n_input_channels=1)
        ours = create_model(f"resnet{depth}_3d", in_chans=1, num_classes=400)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_monai_option_a_shortcut_and_stem_options_agree():
    """MedicalNet's ResNet-18 setting: shortcut A (zeros appended), strided stem, no max-pool."""
    options = {"conv1_t_size": (3, 5, 5), "conv1_t_stride": (1, 2, 2), "no_max_pool": True}
    torch.manual_seed(0)
    reference = nets.resnet18(
        spatial_dims=3, n_input_channels=2, num_classes=3, shortcut_type="A", **options
    )
    _randomise_norms(reference)
    ours = create_model("resnet18_3d", in_chans=2, num_classes=3, shortcut_type="A", **options)
    ours.load_state_dict(reference.state_dict(), strict=True)
    diff = _max_abs_diff(ours, reference, torch.randn(2, 2, 16, 24, 24))
    assert diff < 1e-4, f"max abs difference {diff}"


def test_medicalnet_backbone_file_loads_through_load_weights(tmp_path):
    """MedicalNet's files: a backbone under ``state_dict``, saved from DataParallel, no ``fc``."""
    torch.manual_seed(0)
    reference = nets.resnet10(
        spatial_dims=3, n_input_channels=1, conv1_t_stride=2, feed_forward=False,
        bias_downsample=False,
    )  # fmt: skip
    _randomise_norms(reference)
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}
    path = tmp_path / "resnet_10_23dataset.pth"
    torch.save({"state_dict": state}, path)

    ours = create_model(
        "resnet10_3d", in_chans=1, num_classes=2, conv1_t_stride=2, bias_downsample=False
    )
    fresh_fc = ours.fc.weight.clone()
    report = load_weights(ours, path)
    assert report.backbone_only and not report.dropped_classifier
    torch.testing.assert_close(ours.fc.weight, fresh_fc, rtol=0, atol=0)
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        pooled = ours.eval().forward_head(ours.forward_features(x), pre_logits=True)
        diff = (pooled - reference.eval()(x)).abs().max().item()
    assert diff < 1e-4, f"max abs difference {diff}"


def test_a_backbone_file_for_the_wrong_shortcut_is_refused(tmp_path):
    reference = nets.resnet10(spatial_dims=3, n_input_channels=1, feed_forward=False)
    path = tmp_path / "with_bias.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    from resnet.errors import WeightsError

    with pytest.raises(WeightsError, match=r"unexpected: layer2\.0\.downsample\.0\.bias"):
        load_weights(create_model("resnet10_3d", in_chans=1, bias_downsample=False), path)

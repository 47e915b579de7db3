"""The first ten ImageNet builders equal torchvision's: same keys, same shapes, same outputs."""

import pytest
import torch
import torchvision

from resnet import create_model
from resnet.models.imagenet import TORCHVISION_NAMES


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_torchvision_weights_load_strictly_and_outputs_agree(name):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    # Random BN statistics so the comparison exercises every buffer, not just the defaults.
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    ours = create_model(name).eval()
    reference_state = reference.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference_state.items()
    }
    ours.load_state_dict(reference_state, strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        diff = (ours(x) - reference(x)).abs().max().item()
    assert diff < 1e-5, f"{name}: max abs difference {diff}"


def test_wsl_resnext101_32x48d_has_torchvisions_keys_and_shapes():
    """WSL-Images' hub builds resnext101_32x48d_wsl with torchvision's ResNet class: compared on
    the meta device (828.4M parameters; WSL's table says 829M), its code being
    resnext101_32x8d's at wider groups."""
    with torch.device("meta"):
        reference = torchvision.models.resnet.ResNet(
            torchvision.models.resnet.Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=48
        )
        ours = create_model("resnext101_32x48d")
    shapes = {k: v.shape for k, v in ours.state_dict().items()}
    assert shapes == {k: v.shape for k, v in reference.state_dict().items()}
    assert sum(p.numel() for p in ours.parameters()) == 828_411_176

"""A torchvision ResNet saved as ``nn.Sequential`` of its children (RadImageNet's PyTorch
``ResNet50.pt``: ``backbone.0.weight`` .. ``backbone.7.2.bn3.running_var``) loads by position
into ours and computes what torchvision's net computes."""

import pytest
import torch
import torchvision
from parity_helpers import randomise_norms
from torch import nn

from resnet import create_model, load_weights
from resnet.errors import WeightsError
from resnet.models.identify import inspect_weights


def _trained(name: str, num_classes: int = 1000) -> nn.Module:
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(num_classes=num_classes).eval()
    randomise_norms(net)  # statistics as a trained net's, so a wrong BN shows
    return net


class RadImageNetBackbone(nn.Module):
    """RadImageNet's PyTorch example: ``self.backbone = nn.Sequential(*encoder_layers[:9])``
    of a torchvision resnet50's children (the trunk and its average pool, no fc)."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.backbone = nn.Sequential(*list(resnet.children())[:9])


def _pooled(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.forward_head(net.forward_features(x), pre_logits=True)


def test_radimagenets_resnet50_file_computes_the_trunks_features(tmp_path):
    reference = _trained("resnet50")
    path = tmp_path / "ResNet50.pt"
    torch.save(RadImageNetBackbone(reference).state_dict(), path)
    net = create_model("resnet50", num_classes=3)
    assert "fc is new" in load_weights(net, path).describe()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = torch.flatten(RadImageNetBackbone(reference).backbone(x), 1)
        torch.testing.assert_close(_pooled(net.eval(), x), expected, rtol=0, atol=1e-5)
    report = inspect_weights(path, "resnet5*")
    assert "RadImageNet" in report.kind and list(report.fits)[:1] == ["resnet50"]


def test_every_child_with_its_classifier_at_position_9_loads_unprefixed():
    reference = _trained("resnet18", num_classes=10)
    state = nn.Sequential(*reference.children()).state_dict()  # 0.weight .. 9.bias
    net = create_model("resnet18", num_classes=10)
    assert "fc included" in load_weights(net, state).describe()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), reference(x), rtol=0, atol=1e-5)


def test_a_sequential_resnet_is_torchvisions_not_the_papers_v1():
    state = RadImageNetBackbone(torchvision.models.resnet50()).state_dict()
    with torch.device("meta"):
        v1 = create_model("resnet50", stride_in_1x1=True)
    with pytest.raises(WeightsError, match="nn.Sequential.*stride_in_1x1=False and resnet50 has"):
        load_weights(v1, state)


@pytest.mark.parametrize(
    "state",
    [
        # a deep stem (conv1 is itself a Sequential): not torchvision's children
        {"0.0.weight": torch.zeros(32, 3, 3, 3), "1.running_var": torch.ones(64)},
        # a classifier of two Linear layers, not a ResNet
        {"0.weight": torch.zeros(8, 4), "0.bias": torch.zeros(8), "1.weight": torch.zeros(2, 8)},
    ],
)
def test_other_sequentials_are_not_taken_for_a_resnet(state):
    with pytest.raises(WeightsError, match="does not fit model resnet18.*unexpected: 0"):
        load_weights(create_model("resnet18"), state)

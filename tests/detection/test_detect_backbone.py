"""fpn_backbone: torchvision's FasterRCNN and RetinaNet accept it; it matches torchvision's own."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, RetinaNet
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from resnet.detection import fpn_backbone
from resnet.errors import ConfigError
from resnet.models.norm import FrozenBatchNorm2d

SIZE = 64  # small images and few proposals keep these tests fast on a CPU


def _images_and_targets(channels: int = 3) -> tuple[list[torch.Tensor], list[dict]]:
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(channels, SIZE, SIZE, generator=generator) for _ in range(2)]
    targets = [
        {"boxes": torch.tensor([[5.0, 6.0, 25.0, 30.0]]), "labels": torch.tensor([1])},
        {
            "boxes": torch.tensor([[2.0, 2.0, 20.0, 15.0], [30.0, 35.0, 60.0, 55.0]]),
            "labels": torch.tensor([2, 3]),
        },
    ]
    return images, targets


def _check_detector(detector: nn.Module, loss_names: set[str], channels: int = 3) -> None:
    images, targets = _images_and_targets(channels)
    detector.train()
    losses = detector(images, targets)
    assert set(losses) == loss_names
    assert all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    detector.eval()
    with torch.no_grad():
        outputs = detector(images)
    assert len(outputs) == 2
    for output in outputs:
        assert set(output) == {"boxes", "labels", "scores"}
        assert output["boxes"].shape == (len(output["labels"]), 4)
        assert output["scores"].shape == output["labels"].shape
        if len(output["boxes"]):
            assert output["boxes"].min() >= 0 and output["boxes"].max() <= SIZE


def test_faster_rcnn_accepts_fpn_backbone() -> None:
    torch.manual_seed(0)
    detector = FasterRCNN(
        fpn_backbone("resnet18"), num_classes=4, min_size=SIZE, max_size=SIZE,
        rpn_post_nms_top_n_train=100, rpn_post_nms_top_n_test=50, box_batch_size_per_image=64,
    )  # fmt: skip
    _check_detector(
        detector, {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    )


def test_retinanet_accepts_fpn_backbone_with_p6p7() -> None:
    torch.manual_seed(0)
    # torchvision's RetinaNet recipe: C3..C5 plus P6, P7 computed from P5 (arXiv 1708.02002).
    backbone = fpn_backbone(
        "resnet18", returned_layers=(2, 3, 4), extra_blocks=LastLevelP6P7(256, 256), in_chans=1
    )
    detector = RetinaNet(backbone, num_classes=4, min_size=SIZE, max_size=SIZE,
                         image_mean=[0.5], image_std=[0.25])  # fmt: skip
    _check_detector(detector, {"classification", "bbox_regression"}, channels=1)


@pytest.mark.parametrize(
    ("name", "returned", "keys", "sides"),
    [
        ("resnet18", (1, 2, 3, 4), ["0", "1", "2", "3", "pool"], [16, 8, 4, 2, 1]),
        ("preact_resnet18", (2, 4), ["0", "1", "pool"], [8, 2, 1]),
    ],
)
def test_feature_shapes_and_strides(name, returned, keys, sides) -> None:
    backbone = fpn_backbone(name, returned_layers=returned).eval()
    features = backbone(torch.randn(1, 3, SIZE, SIZE))
    assert list(features) == keys
    assert backbone.out_channels == 256
    assert [tuple(v.shape) for v in features.values()] == [(1, 256, s, s) for s in sides]
    assert backbone.strides == [{1: 4, 2: 8, 3: 16, 4: 32}[i] for i in returned]
    body = backbone.body(torch.randn(1, 3, SIZE, SIZE))
    assert [v.shape[-1] for v in body.values()] == sides[:-1]


@pytest.mark.parametrize("trainable", [0, 3, 5])
def test_trainable_layers_freeze_like_torchvision(trainable: int) -> None:
    backbone = fpn_backbone("resnet18", trainable_layers=trainable)
    trained = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable]
    trained += ["bn1"] if trainable == 5 else []
    for name, parameter in backbone.body.named_parameters():
        assert parameter.requires_grad == any(name.startswith(p) for p in trained), name
    assert all(p.requires_grad for p in backbone.fpn.parameters())


def test_weights_match_torchvision_resnet_fpn_backbone(tmp_path) -> None:
    from torchvision.models import resnet50
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    torch.manual_seed(0)
    reference = resnet50()
    for module in reference.modules():  # non-trivial statistics, so a wrong BN shows up
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)

    theirs = resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=3)
    theirs.body.load_state_dict(reference.state_dict(), strict=False)
    ours = fpn_backbone("resnet50", trainable_layers=3, weights=path)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in ours.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in ours.modules())

    x = torch.randn(2, 3, 64, 64)
    theirs.eval(), ours.eval()
    with torch.no_grad():
        expected, got = theirs.body(x), ours.body(x)
    assert list(got) == list(expected) == ["0", "1", "2", "3"]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-4)
    # Same module names: torchvision's whole FPN backbone state dict loads into ours.
    ours.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-4)
    frozen = {n for n, p in ours.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, p in theirs.named_parameters() if not p.requires_grad}


def test_cifar_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="ImageNet-family"):
        fpn_backbone("resnet20")


@pytest.mark.parametrize(
    "kwargs", [{"trainable_layers": 6}, {"returned_layers": (0, 1)}, {"returned_layers": ()}]
)
def test_bad_options_are_config_errors(kwargs) -> None:
    with pytest.raises(ConfigError):
        fpn_backbone("resnet18", **kwargs)


def test_a_group_norm_network_keeps_its_norms_with_and_without_weights(tmp_path) -> None:
    """The backbone was built with norm_layer='batch' whatever the network: bit_resnet50x1 and
    resnet50_gn became BatchNorm nets, and their own weight files no longer fit."""
    from safetensors.torch import save_file

    from resnet.models import create_model

    torch.manual_seed(0)
    save_file(create_model("resnet50_gn").state_dict(), str(tmp_path / "gn.safetensors"))
    for weights in (None, tmp_path / "gn.safetensors"):
        body = fpn_backbone("resnet50_gn", weights=weights).body
        norms = [m for m in body.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]
        assert norms and all(isinstance(m, nn.GroupNorm) for m in norms), weights
    # A BatchNorm network with weights still gets torchvision's frozen BatchNorm.
    frozen = fpn_backbone("resnet18", weights=None, norm_layer="frozen_batch").body
    assert any(isinstance(m, FrozenBatchNorm2d) for m in frozen.modules())


def test_a_gluon_v2_backbone_keeps_its_input_norm(tmp_path) -> None:
    """Gluon's v2 normalises the input before the stem: the pyramid's body must too, frozen
    (statistics, no scale or shift) when it starts from a weight file."""
    from resnet import create_model

    torch.manual_seed(0)
    net = create_model("gluon_resnet18_v2").eval()
    net.input_bn.running_mean.uniform_(-0.5, 0.5)
    net.input_bn.running_var.uniform_(0.5, 2.0)
    torch.save(net.state_dict(), tmp_path / "gluon.pth")
    backbone = fpn_backbone("gluon_resnet18_v2", weights=tmp_path / "gluon.pth").eval()
    assert isinstance(backbone.body.input_bn, FrozenBatchNorm2d)
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        got = backbone.body(x)["3"]
        expected = net.layer4(net.layer3(net.layer2(net.layer1(net.forward_stem(x)))))
    torch.testing.assert_close(got, expected)

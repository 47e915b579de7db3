"""The blocks: the explainer's ResidualBlock, plain vs residual, zero-init, stochastic depth."""

import pytest
import torch
from torch import nn

from resnet import ConfigError, create_model
from resnet.models.blocks import (
    BasicBlock,
    Bottleneck,
    DropPath,
    PreActBasicBlock,
    PreActBottleneck,
    ResidualBlock,
    ZeroPadShortcut,
)


def test_residual_block_preserves_the_shape_of_the_explainers_example():
    block = ResidualBlock(3)
    x = torch.randn(1, 3, 64, 64)
    assert block(x).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("channels", [0, -3, 2.5, True, "3"])
def test_residual_block_refuses_a_channel_count_that_is_not_a_whole_positive_number(channels):
    with pytest.raises(
        ConfigError, match=f"in_channels must be a whole number >= 1, got {channels!r}"
    ):
        ResidualBlock(channels)


@pytest.mark.parametrize("key", ["num_classes", "in_chans"])
@pytest.mark.parametrize("value", [0, 1.5, None, False])
@pytest.mark.parametrize("name", ["resnet20", "resnet18", "resnet9", "resnet10_3d"])
def test_every_family_refuses_counts_that_are_not_whole_positive_numbers(name, key, value):
    message = f"{key} must be a whole number >= 1, got {value!r}"
    if key == "num_classes" and value == 0 and value is not False:
        message = "num_classes=0 .timm's model without a classifier. is not how this zoo"
    with pytest.raises(ConfigError, match=message):
        create_model(name, **{key: value})


def test_residual_block_with_zeroed_convs_is_relu_of_its_input():
    block = ResidualBlock(3)
    for conv in (block.conv1, block.conv2):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(block(x), torch.relu(x), rtol=0, atol=0)


def test_residual_block_adds_its_input_to_the_branch():
    torch.manual_seed(0)
    block = ResidualBlock(4)
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(block(x), torch.relu(block.residual_branch(x) + x))


@pytest.mark.parametrize("block_cls", [BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck])
def test_plain_block_has_the_same_parameters_and_no_addition(block_cls):
    torch.manual_seed(0)
    inplanes = 16 * block_cls.expansion
    residual = block_cls(inplanes, 16).eval()
    plain = block_cls(inplanes, 16, residual=False).eval()
    plain.load_state_dict(residual.state_dict())  # same names and shapes, strict
    x = torch.randn(2, inplanes, 8, 8)
    out_plain = plain(x)
    out_residual = residual(x)
    # The only difference is the identity added before the final ReLU (or at the end, pre-act).
    if block_cls in (PreActBasicBlock, PreActBottleneck):
        torch.testing.assert_close(out_residual, out_plain + x)
    else:
        assert not torch.allclose(out_residual, out_plain)
        assert torch.all(out_plain >= 0)


def test_plain_block_builds_no_projection_shortcut():
    projection = nn.Sequential(nn.Conv2d(16, 32, 1, 2, bias=False), nn.BatchNorm2d(32))
    assert BasicBlock(16, 32, 2, projection, residual=False).downsample is None


def test_zero_pad_shortcut_subsamples_and_pads_channels_on_both_sides():
    x = torch.arange(1, 1 + 2 * 4 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4, 4)
    out = ZeroPadShortcut(stride=2, extra_channels=4)(x)
    assert out.shape == (2, 8, 2, 2)
    # akamaster/pytorch_resnet_cifar10: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))
    torch.testing.assert_close(out[:, 2:6], x[:, :, ::2, ::2], rtol=0, atol=0)
    assert torch.count_nonzero(out[:, :2]) == 0 and torch.count_nonzero(out[:, 6:]) == 0


def test_zero_pad_shortcut_after_appends_the_zero_channels():
    x = torch.arange(1, 1 + 2 * 4 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4, 4)
    out = ZeroPadShortcut(stride=2, extra_channels=4, pad="after")(x)
    torch.testing.assert_close(out[:, :4], x[:, :, ::2, ::2], rtol=0, atol=0)
    assert torch.count_nonzero(out[:, 4:]) == 0
    with pytest.raises(ConfigError, match="shortcut_pad"):
        ZeroPadShortcut(2, 4, pad="before")


def test_zero_init_residual_makes_every_residual_block_start_as_identity():
    model = create_model("resnet20", zero_init_residual=True).eval()
    block = model.layer1[1]
    x = torch.relu(torch.randn(2, 16, 8, 8))  # block inputs are post-ReLU
    torch.testing.assert_close(block(x), x)


def test_zero_init_residual_never_cuts_a_plain_networks_only_path():
    model = create_model("plain20", zero_init_residual=True)
    for block in model.layer1:
        assert torch.all(block.bn2.weight == 1)


def test_drop_path_is_random_in_training_and_identity_in_eval():
    torch.manual_seed(0)
    drop = DropPath(0.5)
    x = torch.ones(1000, 3)
    kept = drop(x)[:, 0]
    assert set(kept.unique().tolist()) == {0.0, 2.0}  # dropped, or scaled by 1/(1-p)
    assert 400 < int((kept > 0).sum()) < 600
    torch.testing.assert_close(drop.eval()(x), x)


def test_drop_path_rate_rises_linearly_with_depth():
    model = create_model("resnet20", drop_path_rate=0.2)
    blocks = [block for stage in model.stages() for block in stage]
    rates = [b.drop_path.drop_prob for b in blocks if isinstance(b.drop_path, DropPath)]
    assert rates[-1] == pytest.approx(0.2)
    assert rates == sorted(rates)
    assert len(rates) == 8  # the very first block has rate 0 and no DropPath


def test_drop_path_on_a_plain_network_is_refused():
    with pytest.raises(ConfigError, match="residual=True"):
        create_model("plain20", drop_path_rate=0.1)

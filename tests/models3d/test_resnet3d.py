"""The N-d ResNet: shapes, options, the interface the engine relies on, and learning 3D shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet.errors import ConfigError
from resnet.models import create_model, list_models, load_weights, model_entry
from resnet.models.blocks import BasicBlock, Bottleneck, ZeroPadShortcut
from resnet.models.resnet3d import ResNetNd

VOLUME_MODELS = ["resnet10_3d", "resnet18_3d", "resnet34_3d", "resnet50_3d"]
TINY = {"widen_factor": 0.125, "conv1_t_size": 3}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_registered_with_volume_family():
    assert set(VOLUME_MODELS + ["resnet18_1d"]) <= set(list_models("*_[13]d"))
    assert model_entry("resnet18_3d").family == "volume"
    assert model_entry("resnet18_1d").family == "signal"


@pytest.mark.parametrize("name", VOLUME_MODELS)
def test_forward_shapes_match_feature_info(name):
    model = create_model(name, num_classes=3, in_chans=2, **TINY).eval()
    x = torch.randn(2, 2, 16, 20, 24)  # (B, C, D, H, W), anisotropic on purpose
    assert model(x).shape == (2, 3)
    features = create_model(name, in_chans=2, features_only=True, **TINY).eval()(x)
    for info, fmap in zip(model.feature_info, features):
        assert fmap.shape[1] == info["num_chs"]
        assert tuple(fmap.shape[2:]) == tuple(-(-s // info["reduction"]) for s in (16, 20, 24))
    assert model.num_features == model.feature_info[-1]["num_chs"]
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (
        2,
        model.num_features,
    )


def test_widths_and_stem_follow_monai_defaults():
    r18, r50 = create_model("resnet18_3d"), create_model("resnet50_3d")
    assert [i["num_chs"] for i in r18.feature_info] == [64, 128, 256, 512]
    assert [i["num_chs"] for i in r50.feature_info] == [256, 512, 1024, 2048]
    assert isinstance(r18.conv1, nn.Conv3d) and r18.conv1.kernel_size == (7, 7, 7)
    assert r18.conv1.stride == (1, 1, 1) and isinstance(r18.maxpool, nn.MaxPool3d)


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_2d_instance_equals_torchvision(block):
    """With spatial_dims=2 and a stride-2 stem the N-d code is torchvision's ResNet exactly."""
    from torchvision.models import resnet as tv

    tv_block, our_block = {
        "basic": (tv.BasicBlock, BasicBlock),
        "bottleneck": (tv.Bottleneck, Bottleneck),
    }[block]
    theirs = tv.ResNet(tv_block, [1, 2, 1, 1], num_classes=7).eval()
    ours = ResNetNd(
        our_block, [1, 2, 1, 1], 7, 3, spatial_dims=2, conv1_t_stride=2, bias_downsample=False
    ).eval()
    ours.load_state_dict(theirs.state_dict())  # same names and shapes, strict
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("spatial_dims", "shape"), [(1, (2, 12, 64)), (2, (2, 3, 32, 32))])
def test_same_code_builds_1d_and_2d_networks(spatial_dims, shape):
    model = create_model("resnet18_3d", spatial_dims=spatial_dims, in_chans=shape[1], **TINY)
    convs = {type(m) for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)}
    assert convs == {(nn.Conv1d, nn.Conv2d)[spatial_dims - 1]}
    assert model(torch.randn(shape)).shape == (2, 2)
    assert create_model("resnet18_1d", in_chans=12)(torch.randn(2, 12, 64)).shape == (2, 2)


def test_stem_options_change_resolution():
    x = torch.randn(1, 1, 32, 32, 32)
    default = create_model("resnet10_3d", in_chans=1, **TINY, features_only=True, out_indices=(0,))
    strided = create_model(
        "resnet10_3d", in_chans=1, **TINY, conv1_t_stride=2, features_only=True, out_indices=(0,)
    )
    no_pool = create_model(
        "resnet10_3d", in_chans=1, **TINY, no_max_pool=True, features_only=True, out_indices=(0,)
    )
    assert default(x)[0].shape[2:] == (16, 16, 16)
    assert strided(x)[0].shape[2:] == (8, 8, 8)
    assert no_pool(x)[0].shape[2:] == (32, 32, 32)
    per_dim = create_model("resnet10_3d", conv1_t_size=(3, 7, 7), conv1_t_stride=(1, 2, 2))
    assert per_dim.conv1.kernel_size == (3, 7, 7) and per_dim.conv1.padding == (1, 3, 3)


def test_shortcut_a_has_no_parameters_and_matches_plain_count():
    model_a = create_model("resnet18_3d", shortcut="A", in_chans=1, **TINY)
    model_b = create_model("resnet18_3d", shortcut="B", in_chans=1, **TINY)
    plain = create_model("resnet18_3d", residual=False, in_chans=1, **TINY)

    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert count(model_a) == count(plain) < count(model_b)
    assert isinstance(model_a.layer2[0].downsample, ZeroPadShortcut)
    assert all(block.downsample is None for stage in plain.stages() for block in stage)
    x = torch.randn(2, 1, 16, 16, 16)
    assert model_a(x).shape == (2, 2)
    assert model_a.layer2[0].downsample.pad == "after"  # MONAI appends the zero channels
    shortcut = ZeroPadShortcut(2, 4, spatial_dims=3, pad="after")
    out = shortcut(torch.ones(1, 2, 4, 4, 4))
    assert out.shape == (1, 6, 2, 2, 2) and out[:, 2:].abs().sum() == 0


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    for name in ("resnet10_3d", "resnet50_3d"):
        model = create_model(name, in_chans=3, drop_path_rate=0.1, shortcut="B", **TINY)
        model(torch.randn(2, 3, 16, 16, 16)).sum().backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_zero_init_residual_reset_classifier_and_weights_roundtrip(tmp_path):
    model = create_model("resnet18_3d", zero_init_residual=True, in_chans=1, **TINY)
    assert all(block.bn2.weight.abs().sum() == 0 for s in model.stages() for block in s)
    model.reset_classifier(5)
    assert model.eval()(torch.randn(1, 1, 16, 16, 16)).shape == (1, 5)

    from safetensors.torch import save_file

    torch.nn.init.normal_(model.fc.weight)
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    rebuilt = create_model(model.model_name, **model.model_kwargs)
    rebuilt.reset_classifier(5)
    load_weights(rebuilt, tmp_path / "w.safetensors")
    x = torch.randn(2, 1, 16, 16, 16)
    torch.testing.assert_close(rebuilt.eval()(x), model.eval()(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 4},
        {"shortcut": "C"},
        {"conv1_t_size": (7, 7)},
        {"conv1_t_stride": 0},
        {"widen_factor": 0},
        {"norm_layer": "layer"},
        {"in_chans": 0},
    ],
)
def test_bad_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        create_model("resnet10_3d", **kwargs)


def test_wrong_channel_count_fails_loading_with_named_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "two_chans.safetensors"
    save_file(create_model("resnet10_3d", in_chans=2, **TINY).state_dict(), str(path))
    from resnet.errors import WeightsError

    with pytest.raises(WeightsError, match="two_chans.safetensors"):
        load_weights(create_model("resnet10_3d", in_chans=1, **TINY), path)

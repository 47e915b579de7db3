"""ResNet's options: norm layers by name, recordable kwargs, the stems, the registry's imports."""

import ast
import functools
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet import ConfigError, create_model
from resnet.models import BasicBlock, Bottleneck, ResNet
from resnet.models.attention import EfficientChannelAttention, SqueezeExcite

MODELS_DIR = Path(__file__).parents[2] / "src" / "resnet" / "models"
BUILDER_MODULES = ("bit", "cifar", "imagenet", "resnet3d", "resnet_d", "senet")


def test_resnet_itself_resolves_norm_layer_names():
    model = ResNet(BasicBlock, [2, 2, 2, 2], norm_layer="group").eval()
    norms = [m for m in model.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]
    assert norms and all(isinstance(m, nn.GroupNorm) for m in norms)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
    block = Bottleneck(64, 16, norm_layer="none")
    assert isinstance(block.bn1, nn.Identity)
    with pytest.raises(ConfigError, match="unknown norm_layer 'layer'"):
        ResNet(BasicBlock, [1, 1, 1, 1], norm_layer="layer")


def test_no_builder_resolves_norm_layer_itself():
    for module in BUILDER_MODULES:
        assert "resolve_norm_layer" not in (MODELS_DIR / f"{module}.py").read_text(), module


def test_a_kwarg_a_checkpoint_cannot_record_is_refused_with_the_fix():
    group_norm = functools.partial(nn.GroupNorm, 4)
    with pytest.raises(ConfigError, match=r"norm_layer=.*norm_layer=\"group\"") as error:
        create_model("resnet18", norm_layer=group_norm)
    assert "checkpoint" in str(error.value)
    with pytest.raises(ConfigError, match="drop_path_rate=nan.*could not record"):
        create_model("resnet20", drop_path_rate=float("nan"))  # not standard JSON either
    model = create_model("resnet18", norm_layer="group", conv1_t_size=(7, 7))
    assert model.model_kwargs == {"norm_layer": "group", "conv1_t_size": (7, 7)}


def _imports(path: Path) -> list[ast.ImportFrom]:
    tree = ast.parse(path.read_text())
    return [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]


def test_the_registry_imports_no_builder_and_the_package_imports_them_all():
    imported = set()
    for node in _imports(MODELS_DIR / "registry.py"):
        imported.add(node.module or "")
        imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    assert not any(name.endswith(BUILDER_MODULES) for name in imported), imported
    package_imports = {
        alias.name
        for node in _imports(MODELS_DIR / "__init__.py")
        if node.module == "resnet.models"
        for alias in node.names
    }
    assert set(BUILDER_MODULES) <= package_imports


def test_no_module_imports_another_files_private_names():
    offenders = [
        f"{path.name}: {node.module}.{alias.name}"
        for path in MODELS_DIR.glob("*.py")
        for node in _imports(path)
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not offenders


def test_preact_stems_are_bare_convolutions():
    """arXiv 1603.05027: the first block normalises its input; BN-ReLU ends the net instead."""
    x = torch.randn(2, 3, 32, 32)
    imagenet, cifar = create_model("preact_resnet18").eval(), create_model("wrn16_4").eval()
    with torch.no_grad():
        torch.testing.assert_close(imagenet.forward_stem(x), imagenet.maxpool(imagenet.conv1(x)))
        torch.testing.assert_close(cifar.forward_stem(x), cifar.conv1(x))
        features = imagenet.forward_features(x)
    assert "bn1.weight" not in imagenet.state_dict() and "norm.weight" in imagenet.state_dict()
    assert features.min() >= 0  # the final BN-ReLU before pooling stays


def test_attention_gates_scale_each_channel_between_zero_and_one():
    torch.manual_seed(0)
    x = torch.rand(2, 64, 5, 5) + 0.1
    for layer in (SqueezeExcite(64), EfficientChannelAttention(64)):
        ratio = layer(x) / x  # (B, C, H, W): one gate per sample and channel
        assert torch.all((ratio > 0) & (ratio < 1))
        torch.testing.assert_close(ratio, ratio[:, :, :1, :1].expand_as(ratio))
    assert SqueezeExcite(256).fc1.out_channels == 16  # 256 / 16
    assert EfficientChannelAttention(256).conv.kernel_size == (5,)  # ECA's k(256) = 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stem": "stem"},
        {"stem_pool": "average"},
        {"stem_out": "norm"},
        {"downsample": "max"},
        {"attn_layer": "cbam"},
        {"attn_layer": "se", "attn_ratio": 2.0},
        {"shortcut_pad": "before"},
        {"stem": "deep", "conv1_t_size": 7},
        {"no_max_pool": True, "stem_pool": "max"},
    ],
)
def test_bad_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        create_model("resnet18", **kwargs)


@pytest.mark.parametrize("name", ["legacy_seresnet50", "resnetaa50", "resnetblur18", "resnetrs50"])
def test_no_max_pool_false_keeps_a_models_own_stem_pool(name):
    """MONAI's ``no_max_pool=False`` means "keep the pool", not "make it a max-pool"."""
    with torch.device("meta"):
        own, kept = create_model(name), create_model(name, no_max_pool=False)
    assert repr(kept.maxpool) == repr(own.maxpool)


def test_options_combine_on_any_depth():
    model = create_model(
        "resnet18", stem="deep_tiered", downsample="avg", attn_layer="eca", stem_pool="conv"
    )
    assert isinstance(model.layer2[0].downsample[0], nn.AvgPool2d)
    assert isinstance(model.layer2[0].se, EfficientChannelAttention)
    assert model.conv1[0].out_channels == 24 and model.feature_info[-1]["reduction"] == 32
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
    with pytest.raises(ConfigError, match="contradicts"):
        create_model("resnet18_3d", shortcut="A", shortcut_type="B")
    biased = create_model("resnet18", bias_downsample=True)
    assert biased.layer2[0].downsample[0].bias is not None
    assert biased.model_kwargs == {"bias_downsample": True}

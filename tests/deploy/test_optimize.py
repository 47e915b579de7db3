"""BatchNorm folding and ``optimize_for_inference``: same outputs, fewer norm layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet import create_model, optimize_for_inference
from resnet.deploy.optimize import find_conv_bn_pairs, fold_batch_norms
from resnet.errors import ConfigError
from resnet.models.norm import FrozenBatchNorm2d

ZOO_CASES = [
    ("resnet20", (2, 3, 32, 32), {}),
    ("resnet18", (2, 3, 64, 64), {}),
    ("resnet50", (2, 3, 64, 64), {}),
    ("preact_resnet18", (2, 3, 64, 64), {}),
    ("wrn16_4", (2, 3, 32, 32), {}),
    ("resnet18_3d", (2, 1, 16, 16, 16), {"in_chans": 1, "widen_factor": 0.25}),
    ("resnet18_1d", (2, 3, 64), {}),
]


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch_norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def trained_like(name: str, shape: tuple[int, ...], **kwargs) -> nn.Module:
    """A zoo model whose BNs hold non-trivial affine maps and the statistics of a real batch."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, **kwargs)
    with torch.no_grad():
        for norm in _batch_norms(model):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.2, 0.2)
            norm.momentum = 1.0  # the running stats become those of the next batch
        model.train()(torch.randn(16, *shape[1:]))
    return model.eval()


@pytest.mark.parametrize(("name", "shape", "kwargs"), ZOO_CASES)
def test_optimized_outputs_equal_original(name, shape, kwargs):
    model = trained_like(name, shape, **kwargs)
    optimized = optimize_for_inference(model)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected, got = model(x), optimized(x)
        # float32: the folded net rounds differently, ~1e-5 after 50 layers.
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
        # float64: the fold itself is exact, so only float64 rounding remains.
        exact = optimize_for_inference(model.double()).double()
        torch.testing.assert_close(exact(x.double()), model(x.double()), rtol=0, atol=1e-9)
    model.float()
    assert type(optimized) is type(model) and optimized.model_name == name
    assert not optimized.training
    assert not any(p.requires_grad for p in optimized.parameters())
    assert len(_batch_norms(model)) > 0  # the original keeps its norms
    remaining = _batch_norms(optimized)
    if name.startswith(("preact", "wrn")):
        # Norms on a block's input sum (arXiv 1603.05027) have no conv before them: left in place.
        assert 0 < len(remaining) < len(_batch_norms(model))
    else:
        assert remaining == []


def test_convs_get_channels_last_weights_and_a_bias():
    optimized = optimize_for_inference(trained_like("resnet20", (2, 3, 32, 32)))
    conv = optimized.layer1[0].conv1
    assert conv.bias is not None  # the conv had no bias; the fold gave it BN's shift
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    three_d = optimize_for_inference(
        trained_like("resnet10_3d", (2, 1, 8, 8, 8), in_chans=1, widen_factor=0.125)
    )
    assert three_d.conv1.weight.is_contiguous(memory_format=torch.channels_last_3d)


def test_fold_matches_formula_with_conv_bias_and_frozen_bn():
    torch.manual_seed(0)
    for norm in (nn.BatchNorm2d(4), FrozenBatchNorm2d(4)):
        model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), norm).eval()
        with torch.no_grad():
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-1, 1)
        x = torch.randn(2, 3, 8, 8)
        expected = model(x)
        assert fold_batch_norms(model) == 1
        assert isinstance(model[1], nn.Identity)
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


class _ConvUsedTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y  # folding would change the second use of y


def test_conv_with_other_users_is_not_folded():
    model = _ConvUsedTwice().eval()
    assert find_conv_bn_pairs(model) == []
    assert fold_batch_norms(model) == 0


def test_a_weight_standardised_conv_keeps_its_norm():
    # Standardising rescales each filter to unit variance: a BN scale folded into it would vanish.
    model = create_model("resnet18", weight_standardization=True, num_classes=10)
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.momentum = 1.0  # statistics of x, so the logits stay of a sane size
    with torch.no_grad():
        model(x)
        model.eval()
        expected = model(x)
        assert find_conv_bn_pairs(model) == []
        # Channels-last rounding only (logits of size ~1); a folded scale would change them whole.
        optimized = optimize_for_inference(model)(x)
        torch.testing.assert_close(optimized, expected, atol=1e-4, rtol=1e-4)


def test_training_mode_is_refused():
    with pytest.raises(ConfigError, match="eval"):
        fold_batch_norms(create_model("resnet20").train())


def test_bfloat16_runs_in_16_bits_and_returns_float32_logits_close_to_float32():
    model = trained_like("resnet20", (2, 3, 32, 32))
    optimized = optimize_for_inference(model, dtype=torch.bfloat16)
    assert {p.dtype for p in optimized.parameters()} == {torch.bfloat16}
    x = torch.randn(8, 3, 32, 32)  # float32 in: the hook casts it
    with torch.no_grad():
        expected, got = model(x), optimized(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    # bfloat16 keeps 8 significant bits: close to the float32 logits, but not within 1e-4.
    scale = expected.abs().max().item()
    error = (got - expected).abs().max().item()
    assert 1e-4 < error < 0.05 * scale
    assert model.conv1.weight.dtype == torch.float32  # the original is untouched


def test_unsupported_dtype_is_refused():
    with pytest.raises(ConfigError, match="torch.bfloat16"):
        optimize_for_inference(create_model("resnet20").eval(), dtype=torch.int8)

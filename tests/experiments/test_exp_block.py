import pytest
import torch

from resnet.experiments.block import identity_variance_fraction, run_block
from resnet.models import ResidualBlock


def test_block_keeps_the_shape_and_fraction_is_a_share():
    result = run_block(3, 64, seed=0)
    assert result["input_shape"] == [1, 3, 64, 64]
    assert result["output_shape"] == [1, 3, 64, 64]
    assert 0.0 <= result["identity_fraction"] <= 1.0
    expected = result["variance_identity"] / (
        result["variance_identity"] + result["variance_residual"]
    )
    assert result["identity_fraction"] == pytest.approx(expected, rel=1e-12)


def test_block_with_zeroed_convs_is_the_identity():
    block = ResidualBlock(3)
    with torch.no_grad():
        for conv in (block.conv1, block.conv2):
            conv.weight.zero_()
            conv.bias.zero_()
    x = torch.rand(1, 3, 64, 64)  # nonnegative, so relu(x) = x
    result = run_block(block=block, x=x)
    assert result["identity_fraction"] == 1.0
    assert result["variance_residual"] == 0.0
    assert torch.equal(block(x), x)


def test_identity_fraction_of_a_known_residual():
    x = torch.randn(1000)
    # Var(2x) = 4 Var(x): the identity carries one fifth.
    assert identity_variance_fraction(x, 2 * x) == pytest.approx(0.2, rel=1e-9)
    assert identity_variance_fraction(x, torch.zeros_like(x)) == 1.0


def test_block_fraction_depends_on_the_weights():
    block = ResidualBlock(3)
    small = run_block(block=block, seed=0)["identity_fraction"]
    with torch.no_grad():
        block.conv2.weight.mul_(10)
    assert run_block(block=block, seed=0)["identity_fraction"] < small

"""Patch whitening (resnet.models.whitening) and ResNet-9's whitened stem."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import resnet.models.whitening as whitening
from resnet.errors import ConfigError, DataError
from resnet.models import create_model
from resnet.models.whitening import patch_whitening_filters


def smooth_images(n: int = 64, channels: int = 3, size: int = 12, seed: int = 0) -> torch.Tensor:
    """Images whose neighbouring pixels and channels are strongly correlated, as photos are:
    whitening them is far from the identity map."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 1, size + 2, size + 2, generator=generator)
    blurred = F.avg_pool2d(noise, 3, stride=1)  # (n, 1, size, size)
    tint = torch.tensor([1.0, 0.8, -0.5])[:channels].view(1, channels, 1, 1)
    return blurred * tint + 0.1 * torch.randn(n, channels, size, size, generator=generator)


def patch_moment(outputs: torch.Tensor) -> torch.Tensor:
    flat = outputs.double().transpose(0, 1).reshape(outputs.shape[1], -1)
    return flat @ flat.T / flat.shape[1]


@pytest.mark.parametrize("channels, kernel", [(1, 3), (3, 3), (3, 2)])
def test_filters_make_the_patches_white(channels, kernel):
    images = smooth_images(channels=channels)
    filters = patch_whitening_filters(images, kernel_size=kernel, eps=1e-8)
    dims = channels * kernel * kernel
    assert filters.shape == (2 * dims, channels, kernel, kernel)
    assert torch.equal(filters[dims:], -filters[:dims])
    # Before: far from white. After the filters (no padding: every output is a whole patch):
    # unit variance and no correlation, which fails if unfold's (C, k, k) order differed from
    # the conv weight's.
    before = patch_moment(F.unfold(images, kernel).view(len(images), dims, -1))
    assert (before - torch.eye(dims, dtype=torch.float64)).abs().max() > 0.3
    after = patch_moment(F.conv2d(images, filters[:dims]))
    torch.testing.assert_close(after, torch.eye(dims, dtype=torch.float64), atol=2e-3, rtol=0)


def test_eps_damps_the_directions_of_little_variance():
    images = smooth_images(channels=1)
    filters = patch_whitening_filters(images, eps=1.0)
    variances = patch_moment(F.conv2d(images, filters[:9])).diagonal()
    # Variance l / (l + eps): below 1, and smallest for the last (least varying) direction.
    assert variances.max() < 1.0
    assert variances[-1] < 0.5 * variances[0]


def test_chunked_moment_equals_one_pass(monkeypatch):
    images = smooth_images(n=10)
    whole = patch_whitening_filters(images)
    monkeypatch.setattr(whitening, "_CHUNK_VALUES", 1)  # one image per chunk
    chunked = patch_whitening_filters(images)

    # Eigenvectors are defined only up to sign and rotation within equal eigenvalues; the sum
    # of f f^T over the filters, (S + eps I)^-1 for each half, is not.
    def gram(filters):
        flat = filters.flatten(1).double()
        return flat.T @ flat

    torch.testing.assert_close(gram(chunked), gram(whole), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "images, message",
    [
        (torch.zeros(4, 1, 8), "float images \\(B, C, H, W\\)"),
        (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), "float images"),
        (torch.zeros(4, 1, 2, 8), "at least 3x3"),
        (torch.zeros(0, 1, 8, 8), "at least 3x3"),
    ],
)
def test_bad_images_are_a_data_error(images, message):
    with pytest.raises(DataError, match=message):
        patch_whitening_filters(images)


@pytest.mark.parametrize("in_chans, stem", [(1, 18), (3, 54)])
def test_whitened_stem_shape_and_fixed_filters(in_chans, stem):
    model = create_model("resnet9_slim", num_classes=10, in_chans=in_chans, whitened_stem=True)
    assert model.conv1.out_channels == stem and model.conv1.bias is not None
    assert not model.conv1.weight.requires_grad and model.conv1.bias.requires_grad
    assert isinstance(model.bn1, torch.nn.Identity)
    assert model.layer1[0][0].in_channels == stem
    images = smooth_images(n=8, channels=in_chans, size=28)
    model.whiten_stem(images)
    torch.testing.assert_close(model.conv1.weight, patch_whitening_filters(images))
    model.train()
    assert model(images).shape == (8, 10)


def test_training_an_unwhitened_stem_is_an_error_and_loading_one_is_not():
    model = create_model("resnet9_slim", num_classes=10, in_chans=1, whitened_stem=True)
    images = smooth_images(n=4, channels=1, size=28)
    with pytest.raises(ConfigError, match="call model.whiten_stem"):
        model.train()(images)
    assert model.eval()(images).shape == (4, 10)  # inference runs whatever the filters

    model.whiten_stem(images)
    fresh = create_model("resnet9_slim", num_classes=10, in_chans=1, whitened_stem=True)
    fresh.load_state_dict(model.state_dict())  # a checkpoint carries the whitened stem
    torch.testing.assert_close(fresh.train()(images), model.train()(images))


def test_whiten_stem_errors():
    plain = create_model("resnet9_slim", num_classes=10, in_chans=1)
    with pytest.raises(ConfigError, match="whitened_stem=True"):
        plain.whiten_stem(torch.zeros(2, 1, 28, 28))
    model = create_model("resnet9_slim", num_classes=10, in_chans=1, whitened_stem=True)
    with pytest.raises(ConfigError, match=r"\(B, 1, H, W\)"):
        model.whiten_stem(torch.zeros(2, 3, 28, 28))

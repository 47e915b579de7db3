"""Grad-CAM: equals the textbook computation and points at the evidence a model really uses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet import create_model, gradcam
from resnet.errors import ConfigError, DataError
from resnet.models.cifar import cifar_resnet

pytestmark = pytest.mark.usefixtures("one_thread")


def quadrant_images(n: int, seed: int, side: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, side, side) noise; label 1 images have a bright blob somewhere in the top-left
    quadrant, label 0 images do not. Nothing else differs between the classes."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 1, side, side, generator=g) * 0.5
    labels = torch.randint(0, 2, (n,), generator=g)
    axis = torch.arange(side, dtype=torch.float32)
    quarter = side // 2
    centres = torch.rand(n, 2, generator=g) * (quarter - 6) + 3  # inside the top-left quadrant
    dist2 = (axis[None, :, None] - centres[:, 0, None, None]) ** 2 + (
        axis[None, None, :] - centres[:, 1, None, None]
    ) ** 2
    blobs = 3.0 * torch.exp(-dist2 / (2 * 2.0**2))  # (n, side, side)
    images[:, 0] += blobs * labels[:, None, None]
    return images, labels


def test_heatmap_equals_manual_gradcam():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=5).eval()
    x = torch.randn(3, 3, 32, 32)
    heatmaps, classes = gradcam(model, x, class_idx=[0, 2, 4])
    assert heatmaps.shape == (3, 32, 32) and classes.tolist() == [0, 2, 4]

    features = model.forward_features(x).detach().requires_grad_(True)  # layer3 = last stage
    logits = model.forward_head(features)
    logits[torch.arange(3), classes].sum().backward()
    weights = features.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * features).sum(1, keepdim=True))
    cam = nn.functional.interpolate(cam, size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(1).view(-1, 1, 1)
    cam = torch.where(peak > 0, cam / peak, torch.zeros_like(cam))  # no positive evidence: 0
    torch.testing.assert_close(heatmaps, cam.detach(), rtol=1e-4, atol=1e-5)
    assert heatmaps.min() >= 0 and set(heatmaps.flatten(1).amax(1).tolist()) <= {0.0, 1.0}


def test_predicted_class_by_default_and_model_state_restored():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=4).train()
    for parameter in model.parameters():
        parameter.requires_grad_(False)  # frozen weights still give gradients w.r.t. features
    x = torch.randn(2, 3, 64, 64)
    heatmaps, classes = gradcam(model, x, target_layer="layer3")
    with torch.no_grad():
        assert classes.tolist() == model.eval()(x).argmax(1).tolist()
    assert heatmaps.shape == (2, 64, 64) and torch.isfinite(heatmaps).all()
    assert all(not p.requires_grad for p in model.parameters())
    assert not model._forward_hooks and not model.layer3._forward_hooks


def test_any_layer_even_before_an_inplace_relu():
    model = create_model("resnet20").eval()
    x = torch.randn(1, 3, 32, 32)
    heatmaps, _ = gradcam(model, x, target_layer="layer2.0.bn1")  # next op: ReLU(inplace=True)
    assert heatmaps.shape == (1, 32, 32) and torch.isfinite(heatmaps).all()


def test_volumes_get_volume_heatmaps():
    model = create_model("resnet10_3d", in_chans=1, widen_factor=0.125, conv1_t_size=3).eval()
    heatmaps, classes = gradcam(model, torch.randn(2, 1, 16, 16, 16))
    assert heatmaps.shape == (2, 16, 16, 16) and classes.shape == (2,)


def test_bad_arguments_raise_one_line_errors():
    model = create_model("resnet20", num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ConfigError, match="out of range"):
        gradcam(model, x, class_idx=3)
    with pytest.raises(ConfigError, match="2 entries for 2|entries"):
        gradcam(model, x, class_idx=[0, 1, 2])
    with pytest.raises(ConfigError, match="no module 'layer9'"):
        gradcam(model, x, target_layer="layer9")
    with pytest.raises(ConfigError, match="feature map"):
        gradcam(model, x, target_layer="fc")
    with pytest.raises(DataError, match=r"shape \(3, 32\) but the model takes \(N, C, H, W\)"):
        gradcam(model, torch.randn(3, 32))
    with pytest.raises(ConfigError, match="whole class numbers, got 1.5"):
        gradcam(model, x, class_idx=1.5)  # was truncated to class 1


@pytest.mark.parametrize(
    "name, images, message",
    [
        ("resnet20", torch.randn(3, 32, 32), r"\(3, 32, 32\).*add the batch dimension"),
        ("resnet20", torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "float tensor.*uint8"),
        ("resnet20", torch.randn(1, 1, 32, 32), "1 channel\\(s\\) but the model takes 3"),
        ("resnet20", torch.full((1, 3, 32, 32), float("nan")), "NaN or infinite"),
        ("resnet20", torch.randn(0, 3, 32, 32), "hold no values"),
        ("resnet20", [[0.0]], "float tensor .* got list"),
        ("resnet10_3d", torch.randn(1, 1, 16, 16), r"takes \(N, C, D, H, W\)"),
    ],
)
def test_batches_the_model_cannot_take_are_named(name, images, message):
    """Not torch's error from inside a conv, and never NaN in, blank heatmap out."""
    model = create_model(name, num_classes=3, in_chans=1 if "3d" in name else 3).eval()
    with pytest.raises(DataError, match=message):
        gradcam(model, images)


def test_heatmap_finds_the_quadrant_that_decides_the_class():
    torch.manual_seed(0)
    train_x, train_y = quadrant_images(2048, seed=1)
    test_x, test_y = quadrant_images(256, seed=2)
    model = cifar_resnet(8, num_classes=2, in_chans=1)  # 3 stages of one basic block
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for batch in torch.randperm(len(train_x)).split(32):  # 64 steps
        loss = nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
    assert accuracy >= 0.95

    positives = test_x[test_y == 1]
    heatmaps, classes = gradcam(model, positives, class_idx=1)
    quadrant_mass = heatmaps[:, :16, :16].sum((1, 2)) / heatmaps.sum((1, 2)).clamp_min(1e-8)
    peak = heatmaps.flatten(1).argmax(1)
    peak_row, peak_col = peak // 32, peak % 32
    in_quadrant = ((peak_row < 16) & (peak_col < 16)).float().mean().item()
    hot = heatmaps > 0.5
    hot_in_quadrant = (hot[:, :16, :16].sum((1, 2)) / hot.sum((1, 2)).clamp_min(1)).mean().item()
    # A uniform map would put 25% of its mass, hot area and peaks in the quadrant.
    assert in_quadrant > 0.9, in_quadrant
    assert hot_in_quadrant > 0.6, hot_in_quadrant
    assert quadrant_mass.mean().item() > 0.45, quadrant_mass.mean().item()
    # For images without the blob there is no evidence for class 1 anywhere.
    negatives, _ = gradcam(model, test_x[test_y == 0][:32], class_idx=1)
    assert negatives.mean() < 0.1 * heatmaps.mean()

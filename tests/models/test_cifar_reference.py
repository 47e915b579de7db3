"""The public CIFAR reproduction's checkpoints load unchanged and give its outputs.

akamaster/pytorch_resnet_cifar10 (resnet20/32/44/56/110/1202) is what most people start from;
``_Reference`` below follows its code's structure and names, and its files' format:
``{'state_dict': {'module.conv1.weight', ..., 'module.linear.bias'}, 'best_prec1': ...}``,
saved under DataParallel and without BatchNorm's ``num_batches_tracked``.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet import create_model, load_weights


class _LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class _BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            # Option A as they write it: zero channels on both sides of the subsampled input.
            pad = (0, 0, 0, 0, planes // 4, planes // 4)
            self.shortcut = _LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], pad, "constant", 0))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class _Reference(nn.Module):
    def __init__(self, n, num_classes=10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, n, stride=1)
        self.layer2 = self._make_layer(32, n, stride=2)
        self.layer3 = self._make_layer(64, n, stride=2)
        self.linear = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(module.weight)

    def _make_layer(self, planes, blocks, stride):
        layers = []
        for block_stride in [stride] + [1] * (blocks - 1):
            layers.append(_BasicBlock(self.in_planes, planes, block_stride))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


def _reference_file(tmp_path, depth):
    torch.manual_seed(0)
    reference = _Reference((depth - 2) // 6)
    # Trained-looking statistics (a batch's, as training leaves them) and affine maps: with the
    # defaults an untrained net's logits grow with depth until rounding noise is all one sees.
    for module in reference.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 1.0
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    with torch.no_grad():
        reference.train()(torch.randn(16, 3, 32, 32))
    state = {f"module.{k}": v for k, v in reference.state_dict().items() if "num_batches" not in k}
    path = tmp_path / f"resnet{depth}-reference.th"
    torch.save({"state_dict": state, "best_prec1": 91.25}, path)
    return reference.eval(), path


@pytest.mark.parametrize("depth", [20, 32])
def test_reference_checkpoint_loads_unchanged_and_logits_agree(tmp_path, depth):
    reference, path = _reference_file(tmp_path, depth)
    ours = create_model(f"resnet{depth}")
    report = load_weights(ours, path)
    assert report.renamed_classifier == "linear"
    assert not (report.dropped_classifier or report.backbone_only or report.adapted_conv1)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = reference(x)
        diff = (ours.eval()(x) - expected).abs().max().item()
    assert expected.abs().max() > 0.1  # logits of a useful size, not all near zero
    assert diff < 1e-5, f"max abs difference {diff}"


def test_appending_the_zero_channels_would_not_match(tmp_path):
    reference, path = _reference_file(tmp_path, 20)
    after = create_model("resnet20", shortcut_pad="after")
    load_weights(after, path)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert (after.eval()(x) - reference(x)).abs().max().item() > 1e-2

"""Schedules, parameter groups, EMA and freezing."""

from __future__ import annotations

import math

import pytest
import torch

from resnet.engine.optim import ModelEma, freeze_backbone, lr_factor, param_groups, set_bn_eval
from resnet.models import create_model


def test_step_schedule_in_paper_iterations():
    kwargs = {"schedule": "step", "total_steps": 64000, "milestones": [32000, 48000]}
    assert lr_factor(0, **kwargs) == 1.0
    assert lr_factor(31999, **kwargs) == 1.0
    assert lr_factor(32000, **kwargs) == pytest.approx(0.1)
    assert lr_factor(47999, **kwargs) == pytest.approx(0.1)
    assert lr_factor(48000, **kwargs) == pytest.approx(0.01)


def test_cosine_with_warmup():
    kwargs = {"schedule": "cosine", "total_steps": 110, "warmup_steps": 10}
    assert lr_factor(0, **kwargs) == pytest.approx(0.1)  # (0 + 1) / 10
    assert lr_factor(9, **kwargs) == pytest.approx(1.0)
    assert lr_factor(60, **kwargs) == pytest.approx(0.5)  # halfway through the cosine
    assert lr_factor(85, **kwargs) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))
    assert lr_factor(110, **kwargs) == pytest.approx(0.0, abs=1e-12)


def test_onecycle_and_constant():
    kwargs = {"schedule": "onecycle", "total_steps": 100, "warmup_steps": 25}
    assert lr_factor(0, **kwargs) == pytest.approx(0.04)
    assert lr_factor(25, **kwargs) == pytest.approx(1.0)
    assert lr_factor(50, **kwargs) == pytest.approx(2 / 3)
    assert lr_factor(100, **kwargs) == 0.0
    # Default peak at 30% of the run.
    assert lr_factor(30, schedule="onecycle", total_steps=100) == pytest.approx(1.0)
    assert lr_factor(5, schedule="constant", total_steps=10) == 1.0


def test_no_weight_decay_for_norm_and_bias():
    model = create_model("resnet20", num_classes=10, in_chans=1)
    groups = param_groups(model, weight_decay=5e-4, no_wd_norm_bias=True, backbone_lr_scale=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    by_group = {g["name"]: ({names[id(p)] for p in g["params"]}, g) for g in groups}
    decayed = by_group["backbone"][0] | by_group["head"][0]
    no_decay = by_group["backbone_no_decay"][0] | by_group["head_no_decay"][0]
    assert all(n.endswith("weight") and "bn" not in n for n in decayed)
    assert "fc.bias" in no_decay and "bn1.weight" in no_decay and "layer1.0.bn2.bias" in no_decay
    assert "fc.weight" in by_group["head"][0] and "conv1.weight" in by_group["backbone"][0]
    assert by_group["backbone_no_decay"][1]["weight_decay"] == 0.0
    assert by_group["backbone"][1]["lr_scale"] == 0.1 and by_group["head"][1]["lr_scale"] == 1.0
    assert len(decayed | no_decay) == len(list(model.parameters()))


def test_ema_math():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = ModelEma(model, decay=0.9)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1.0)
        model[1].num_batches_tracked.fill_(7)
    ema.update(model)
    after = ema.module.state_dict()
    for name, value in model.state_dict().items():
        if value.dtype.is_floating_point:
            torch.testing.assert_close(after[name], 0.9 * before[name] + 0.1 * value)
        else:
            assert torch.equal(after[name], value)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_a_frozen_stem_keeps_its_input_norms_statistics():
    """Gluon v2's input_bn has no parameters to freeze; a frozen stem keeps it in eval mode
    all the same, or its running statistics drift under a frozen stem."""
    model = create_model("gluon_resnet18_v2", num_classes=10)
    model.train()
    set_bn_eval(model, all_bn=False, frozen_names=freeze_backbone(model, 1))
    assert not model.input_bn.training and not model.bn1.training and model.layer2[0].bn1.training
    model.train()
    set_bn_eval(model, all_bn=False, frozen_names=freeze_backbone(model, 0))
    assert model.input_bn.training


def test_freeze_backbone_freezes_stem_and_stages():
    model = create_model("resnet20", num_classes=10, in_chans=1)
    frozen = set(freeze_backbone(model, 2))
    assert {"conv1.weight", "bn1.weight", "layer2.2.conv2.weight"} <= frozen
    assert not any(n.startswith(("layer3", "fc")) for n in frozen)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable.isdisjoint(frozen) and "fc.weight" in trainable

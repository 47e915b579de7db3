"""ResNet-9 options beyond the whitened stem (tests/models/test_whitening.py)."""

from __future__ import annotations

import pytest
import torch

from resnet import ConfigError, create_model


def _pair(**kwargs):
    models = []
    for scale in (1.0, 0.125):
        torch.manual_seed(0)
        models.append(create_model("resnet9_slim", num_classes=10, in_chans=1,
                                   logit_scale=scale, **kwargs).eval())  # fmt: skip
    return models


def test_logit_scale_multiplies_the_logits_and_nothing_else():
    plain, scaled = _pair()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        features = plain.forward_features(x)
        assert torch.equal(features, scaled.forward_features(x))
        pooled = plain.forward_head(features, pre_logits=True)
        assert torch.equal(pooled, scaled.forward_head(features, pre_logits=True))
        torch.testing.assert_close(scaled(x), plain(x) * 0.125, rtol=0, atol=0)
    assert plain.state_dict().keys() == scaled.state_dict().keys()  # no new weight in the file


def test_logit_scale_is_kept_by_a_new_classifier():
    _, scaled = _pair()
    scaled.reset_classifier(3)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        logits = scaled(x)
        pooled = scaled.forward_head(scaled.forward_features(x), pre_logits=True)
        torch.testing.assert_close(logits, scaled.fc(pooled) * 0.125)
    assert logits.shape == (2, 3)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("inf"), float("nan")])
def test_a_logit_scale_that_is_not_a_positive_number_is_refused(scale):
    # inf and nan are refused first as values no checkpoint could record
    with pytest.raises(ConfigError, match="logit_scale"):
        create_model("resnet9_slim", logit_scale=scale)


def _with_activations_swapped(model, make):
    """``model`` with every ReLU module replaced by ``make()``: the reference for act_layer."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(module, name, make())
    return model


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("silu", lambda: torch.nn.SiLU()),
        ("gelu", lambda: torch.nn.GELU()),
        ("hardswish", lambda: torch.nn.Hardswish()),
    ],
)
def test_act_layer_puts_the_activation_everywhere_relu_was(name, reference):
    torch.manual_seed(0)
    smooth = create_model("resnet9_slim", num_classes=10, in_chans=1, act_layer=name)
    torch.manual_seed(0)
    relu = create_model("resnet9_slim", num_classes=10, in_chans=1)
    assert smooth.state_dict().keys() == relu.state_dict().keys()  # the same weight files
    assert not any(isinstance(m, torch.nn.ReLU) for m in smooth.modules())
    expected = _with_activations_swapped(relu, reference)
    x = torch.randn(8, 1, 28, 28, requires_grad=True)
    for model in (smooth, expected):  # train mode: in-place SiLU must keep its gradient right
        model.train()
        model(x).square().sum().backward()
    torch.testing.assert_close(smooth(x), expected(x))
    for (key, got), (_, want) in zip(smooth.named_parameters(), expected.named_parameters()):
        torch.testing.assert_close(got.grad, want.grad, msg=key)


def test_an_unknown_activation_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="unknown activation 'swish': choose one of relu, silu"):
        create_model("resnet9_slim", act_layer="swish")


@pytest.mark.parametrize("kind", ["blur", "avg"])
def test_anti_aliased_transitions_keep_every_stages_size(kind):
    """MaxBlurPool (the max at stride 1, then the low-pass subsampling) halves a map exactly as
    the 2x2 max-pool does: 28 -> 14 -> 7 -> 3, so recipes and checkpoints keep their shapes."""

    def stage_shapes(model):
        x, shapes = model.forward_stem(torch.randn(2, 1, 28, 28)), []
        for stage in model.stages():
            x = stage(x)
            shapes.append(tuple(x.shape[-2:]))
        return shapes

    plain = create_model("resnet9_slim", in_chans=1).eval()
    aliased = create_model("resnet9_slim", in_chans=1, anti_alias=kind).eval()
    with torch.no_grad():
        assert stage_shapes(aliased) == stage_shapes(plain) == [(14, 14), (7, 7), (3, 3)]
    assert plain.state_dict().keys() == aliased.state_dict().keys()  # the filters hold no weights


def test_a_blurred_resnet9s_weights_are_refused_by_a_plain_one():
    """Same keys, another network: a run's checkpoint states its anti_alias (layouts.py)."""
    from resnet.errors import WeightsError
    from resnet.models.layouts import assumptions_of, check_assumptions

    aliased = create_model("resnet9_slim", in_chans=1, anti_alias="blur")
    assumed = assumptions_of(aliased, "a checkpoint of resnet9_slim (anti_alias='blur')")
    with pytest.raises(WeightsError, match="anti_alias='blur' and .* has None"):
        check_assumptions(assumed, create_model("resnet9_slim", in_chans=1), "runs/x")


def test_ceil_mode_keeps_the_last_row_and_column_a_floor_pool_drops():
    torch.manual_seed(0)
    floor = create_model("resnet9_slim", num_classes=10, in_chans=1).eval()
    ceil = create_model("resnet9_slim", num_classes=10, in_chans=1, ceil_mode=True).eval()
    ceil.load_state_dict(floor.state_dict())  # the same weights: only the pooling differs
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert floor.forward_features(x).shape[-2:] == (3, 3)
        assert ceil.forward_features(x).shape[-2:] == (4, 4)  # 28 -> 14 -> 7 -> 4
        seven = floor.layer2(floor.layer1(floor.forward_stem(x)))  # 7x7, the same in both
        dropped, kept = floor.layer3[0](seven), ceil.layer3[0](seven)
    # The windows both pools have agree; the 4th row and column pool the 7th of the 7x7 map.
    torch.testing.assert_close(kept[..., :3, :3], dropped, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ceil_mode": 1}, "on or off"),
        ({"ceil_mode": True, "anti_alias": "blur"}, "one of the two"),
    ],
)
def test_ceil_mode_is_a_bool_for_max_pool_transitions_only(options, message):
    with pytest.raises(ConfigError, match=message):
        create_model("resnet9_slim", **options)

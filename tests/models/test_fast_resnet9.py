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

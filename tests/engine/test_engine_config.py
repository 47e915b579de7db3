"""TrainConfig: recipes, overrides, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnet.engine.config import TrainConfig
from resnet.errors import ConfigError

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_yaml_with_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: resnet56\nlr: 0.2\nweight_decay: 1e-4\nmilestones: [10, 20]\n")
    config = TrainConfig.from_yaml(recipe, {"lr": 0.05, "schedule": "step"})
    assert config.model == "resnet56"
    assert config.lr == 0.05
    assert config.weight_decay == pytest.approx(1e-4)  # YAML 1.1 reads "1e-4" as a string
    assert config.milestones == [10, 20]
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_unknown_key_names_the_closest_field():
    with pytest.raises(ConfigError, match="unknown config key 'weight_decy'.*'weight_decay'"):
        TrainConfig.from_dict({"weight_decy": 0.1})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"optimizer": "adam"}, "optimizer must be one of"),
        ({"schedule": "step"}, "needs milestones"),
        ({"epochs": 0}, r"epochs must be in \[1, 100000\], got 0"),
        ({"ema": 1.5}, r"ema must be in \(0, 1\), got 1.5"),
        ({"lr": "fast"}, "lr must be a number"),
        ({"eval_tta_shift": -1}, r"eval_tta_shift must be in \[0, 1024\], got -1"),
        ({"model_kwargs": {"in_chans": 1}}, "model_kwargs 'in_chans' is the dataset's"),
        ({"model_kwargs": {"num_classes": 3}}, "model_kwargs 'num_classes' is the dataset's"),
    ],
)
def test_bad_values(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(values)


@pytest.mark.parametrize(
    "milestones, message",
    [
        (["abc"], "must be numbers"),
        ([[1]], "must be numbers"),
        ([None], "must be numbers"),
        ([True], "must be numbers"),
        ([float("nan")], "must be positive and finite"),
        ([float("inf")], "must be positive and finite"),
        ([-1], "must be positive and finite"),
        ([0], "must be positive and finite"),
        ([5, 2], "must increase"),
        ([5, 5], "must increase"),
    ],
)
def test_bad_milestones_are_one_config_error(milestones, message):
    with pytest.raises(ConfigError, match=f"milestones {message}"):
        TrainConfig.from_dict({"schedule": "step", "milestones": milestones})


@pytest.mark.parametrize("config", [[1, 2], "epochs: 3", 5])
def test_train_refuses_a_config_that_is_not_a_mapping(config):
    from resnet.engine.train import train

    with pytest.raises(ConfigError, match="a config must be a mapping of field: value"):
        train(config)


def test_recipes_parse():
    paper = TrainConfig.from_yaml(RECIPES / "cifar10-paper.yaml")
    # arXiv 1512.03385 sec. 4.2: lr 0.1, /10 at 32k and 48k iterations, stop at 64k.
    assert (paper.lr, paper.momentum, paper.weight_decay, paper.batch_size) == (0.1, 0.9, 1e-4, 128)
    assert paper.milestones == [32000, 48000] and paper.milestones_unit == "steps"
    assert paper.max_steps == 64000 and paper.pad == 4 and paper.augment
    fast = TrainConfig.from_yaml(RECIPES / "fashion-mnist.yaml")
    assert fast.dataset == "fashion-mnist" and fast.batch_size == 256


def test_yaml_off_means_amp_off(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("amp: off\n")  # YAML 1.1 reads a bare off as false
    assert TrainConfig.from_yaml(recipe).amp == "off"
    assert TrainConfig.from_dict({"amp": False}).amp == "off"
    with pytest.raises(ConfigError, match="amp must be a string, got True"):
        TrainConfig.from_dict({"amp": True})  # `on` says nothing about which precision

"""The public Python API refuses arguments of the wrong kind with one ResnetError line.

Before, these failed inside difflib, pathlib or torch (`'NoneType' object is not iterable`,
`'str' object has no attribute 'eval'`), or were truncated silently (a seed of 1.5).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import resnet
from resnet.checks import is_whole, whole_number
from resnet.data import seeded_split
from resnet.errors import ConfigError, ResnetError, UnknownModelError, WeightsError


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(2)])
def test_whole_numbers_come_back_as_int(value):
    assert is_whole(value)
    result = whole_number("count", value)
    assert result == value and type(result) is int


@pytest.mark.parametrize("value", [0, -2, 1.5, 2.0, True, "3", None, float("nan")])
def test_anything_else_is_a_config_error_naming_the_argument(value):
    with pytest.raises(ConfigError, match=r"^count must be a whole number >= 1, got "):
        whole_number("count", value)


CALLS = {
    "create_model(None)": (lambda: resnet.create_model(None), UnknownModelError, "string"),
    "create_model(num_classes=2.5)": (
        lambda: resnet.create_model("resnet20", num_classes=2.5),
        ConfigError,
        "num_classes must be a whole number",
    ),
    "create_model(num_classes=0)": (  # timm's headless model: the error says how it is done here
        lambda: resnet.create_model("resnet18", num_classes=0),
        ConfigError,
        "for pooled features use model.forward_head",
    ),
    "list_models(None)": (lambda: resnet.list_models(None), ConfigError, "pattern must be"),
    "reset_classifier(2.5)": (
        lambda: resnet.create_model("resnet20").reset_classifier(2.5),
        ConfigError,
        "num_classes must be a whole number",
    ),
    "resnet9.reset_classifier(0)": (
        lambda: resnet.create_model("resnet9_slim").reset_classifier(0),
        ConfigError,
        "num_classes must be a whole number >= 1, got 0",
    ),
    "load_weights(model, None)": (
        lambda: resnet.load_weights(resnet.create_model("resnet20"), None),
        WeightsError,
        "file path or a state_dict mapping, got NoneType",
    ),
    "load_weights(name, file)": (
        lambda: resnet.load_weights("resnet20", "resnet20.pth"),
        ConfigError,
        "takes the model first, got str",
    ),
    "optimize_for_inference(name)": (
        lambda: resnet.optimize_for_inference("resnet20"),
        ConfigError,
        "takes an nn.Module, got str",
    ),
    "load_dataset(None)": (lambda: resnet.load_dataset(None), ConfigError, "dataset must be"),
    "seeded_split(seed=1.5)": (
        lambda: seeded_split(10, 0.5, 1.5),
        ConfigError,
        "seed must be a whole number >= 0",
    ),
}


@pytest.mark.parametrize("call", CALLS, ids=list(CALLS))
def test_public_functions_refuse_wrong_kinds_in_one_line(call):
    function, error, message = CALLS[call]
    with pytest.raises(error, match=message) as raised:
        function()
    assert isinstance(raised.value, ResnetError) and "\n" not in str(raised.value)


def test_numpy_class_counts_build_and_are_recorded_as_int():
    """`num_classes=labels.max() + 1` is a numpy integer: it builds, and the checkpoint's
    recorded kwargs stay JSON."""
    model = resnet.create_model("resnet20", num_classes=np.int64(4), in_chans=np.int32(1))
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 4)
    assert type(model.model_kwargs["num_classes"]) is int
    assert type(model.model_kwargs["in_chans"]) is int


# One model of each class and builder: every bool parameter of either is an on/off switch.
SWITCH_MODELS = ["resnet20", "plain20", "resnet18", "wrn16_4", "resnet9_slim", "resnet18_3d"]


def _switches(name):
    import inspect

    from resnet.models import model_entry

    model = resnet.create_model(name)
    callables = (model_entry(name).builder, type(model).__init__)
    return sorted(
        {key for f in callables for key, p in inspect.signature(f).parameters.items()
         if p.annotation in (bool, "bool")}
    )  # fmt: skip


def _accepts(name, key):
    """Whether ``name`` takes ``key`` at all (plain20's builder fixes ``residual`` itself)."""
    try:
        resnet.create_model(name, **{key: False})
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("name", SWITCH_MODELS)
def test_every_on_off_model_option_takes_a_bool_only(name):
    """``zero_init_residual="false"`` was a true string, and turned the option on."""
    switches = [key for key in _switches(name) if _accepts(name, key)]
    assert switches  # each of these models has at least one (zero_init_residual, ...)
    for key in switches:
        for value in ("false", 1, None):
            with pytest.raises(ConfigError, match=f"{key} is on or off; pass True or False"):
                resnet.create_model(name, **{key: value})
    with pytest.raises(ConfigError, match="features_only is on or off"):
        resnet.create_model(name, features_only="no")


@pytest.mark.parametrize(
    "out_indices, message",
    [((3, 1), "in increasing order"), ((1, 1), "each stage once"), ((1.0, 2), "whole stage")],
)
def test_feature_indices_come_once_each_in_stage_order(out_indices, message):
    """(3, 1) returned stage 1 then 3 while feature_info said 3 then 1; 1.0 was never matched."""
    with pytest.raises(ConfigError, match=message):
        resnet.create_model("resnet18", features_only=True, out_indices=out_indices)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda v: resnet.load_dataset("fashion-mnist", "test", download=v), "download"),
        (lambda v: resnet.evaluate("no-run", tta_flip=v), "tta_flip"),
        (lambda v: resnet.optimize_for_inference(torch.nn.Linear(2, 2), fold_bn=v), "fold_bn"),
        (lambda v: resnet.optimize_for_inference(torch.nn.Linear(2, 2), compile=v), "compile"),
        (lambda v: resnet.optimize_for_inference(torch.nn.Linear(2, 2), inplace=v), "inplace"),
        (lambda v: resnet.export_model("no-run", "onnx", fold_bn=v), "fold_bn"),
        (lambda v: _loader(channels_last=v), "channels_last"),
        (lambda v: _loader(drop_last=v), "drop_last"),
        (lambda v: _loader(train=v), "train"),
        (lambda v: _run("degradation", "run_degradation", augment=v), "augment"),
        (
            lambda v: _run("degradation", "run_degradation", zero_init_residual=v),
            "zero_init_residual",
        ),
        (lambda v: _run("landscape", "run_landscape", {}, two_d=v), "two_d"),
        (lambda v: _run("demo", "run_demo", full=v), "full"),
    ],
)
def test_on_off_arguments_of_the_api_take_a_bool_only(call, name):
    """``tta_flip="false"`` is a true string: evaluate ran with test-time flips."""
    for value in ("false", 0, None):
        with pytest.raises(ConfigError, match=f"^{name} must be true or false, got {value!r}$"):
            call(value)


def _loader(**options):
    meta = resnet.data.DatasetMeta("x", ["a", "b"], 1, (4, 4), (0.5,), (0.25,))
    data = resnet.data.ArrayDataset(
        torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), meta
    )
    return resnet.data.make_loader(data, batch_size=2, **{"train": False, **options})


def _run(module, function, *args, **options):
    import importlib

    return getattr(importlib.import_module(f"resnet.experiments.{module}"), function)(
        *args, **options
    )

"""``resnet.io``: strict YAML (no silent last-one-wins for a repeated key)."""

import pytest
import yaml

from resnet.io import load_yaml


@pytest.mark.parametrize(
    "text, key",
    [
        ("lr: 0.1\nepochs: 2\nlr: 0.5\n", "'lr'"),
        ("model_kwargs: {a: 1, b: 2, a: 3}\n", "'a'"),
        ("- {x: 1, x: 1}\n", "'x'"),  # even the same value twice, inside a list
        ("1: a\n1.0: b\n", "1.0"),  # equal as YAML values, though spelled apart
    ],
)
def test_a_key_given_twice_is_an_error_naming_it(text, key):
    with pytest.raises(yaml.YAMLError, match=f"key {key} is given twice"):
        load_yaml(text)
    assert isinstance(yaml.safe_load(text), (dict, list))  # what PyYAML alone accepts


@pytest.mark.parametrize(
    "text, expected",
    [
        ("lr: 0.1\nmilestones: [1, 2]\n", {"lr": 0.1, "milestones": [1, 2]}),
        ("base: &b {lr: 0.1, epochs: 2}\nrun: {<<: *b, lr: 0.2}\n", None),  # merge, then override
        ("a: 1\nA: 2\n", {"a": 1, "A": 2}),
        ("", None),
    ],
)
def test_everything_else_reads_as_safe_load_reads_it(text, expected):
    assert load_yaml(text) == yaml.safe_load(text)
    if expected is not None:
        assert load_yaml(text) == expected


def test_unhashable_keys_keep_pyyamls_own_error():
    with pytest.raises(yaml.YAMLError, match="found unhashable key"):
        load_yaml("? [1, 2]\n: 3\n")

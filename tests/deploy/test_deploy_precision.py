"""Scoring runs in what training ran in: ``training_precision`` rebuilds the run's StepContext."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet.deploy.runtime import training_precision


@pytest.mark.parametrize(
    ("train_config", "dtype", "name", "precision", "kernels"),
    [
        ({"amp": "bf16", "conv_kernels": "native"}, None, "bfloat16 autocast (as trained)",
         "bf16", False),
        ({"amp": "off"}, None, "float32", "off", True),  # a checkpoint from before conv_kernels
        ({}, None, "float32", "off", True),  # no config at all: float32, default kernels
        ({"amp": "bf16"}, "bfloat16", "bfloat16", "off", True),  # --dtype: weights cast instead
    ],
)  # fmt: skip
def test_the_training_context_comes_back(train_config, dtype, name, precision, kernels):
    got_name, context = training_precision(nn.Linear(2, 2), {"train_config": train_config}, dtype)
    assert got_name == name
    assert context.precision == precision
    assert (context.kernels is not None) is kernels


def test_an_exported_model_keeps_its_own_precision():
    class Exported(nn.Module):  # an ONNX session wrapper: no parameters
        def forward(self, x):
            return x

    assert training_precision(Exported(), {"train_config": {"amp": "bf16"}}) == ("float32", None)
    assert training_precision(Exported(), {}, "bfloat16") == ("bfloat16", None)


def test_amp_bf16_checkpoints_score_in_bf16():
    _, context = training_precision(nn.Linear(4, 3), {"train_config": {"amp": "bf16"}})
    with context:
        out = nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert out.dtype == torch.bfloat16

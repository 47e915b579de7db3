"""Which precision training runs in: ``amp`` and the native-bfloat16 probe behind it."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from resnet.device import has_fast_bfloat16
from resnet.engine.setup import autocast_context

CPUINFO = Path("/proc/cpuinfo")


@pytest.mark.skipif(not CPUINFO.is_file(), reason="reads the CPU flags Linux lists")
def test_native_bfloat16_probe_agrees_with_the_cpu_flags():
    flags = {
        flag
        for line in CPUINFO.read_text().splitlines()
        if line.startswith("flags")
        for flag in line.split(":", 1)[1].split()
    }
    native = bool(flags & {"avx512_bf16", "amx_bf16"})
    assert has_fast_bfloat16(torch.device("cpu")) == native


def test_amp_auto_keeps_the_cpu_in_float32_and_bf16_turns_autocast_on():
    cpu = torch.device("cpu")
    assert isinstance(autocast_context("auto", cpu), contextlib.nullcontext)
    assert isinstance(autocast_context("off", cpu), contextlib.nullcontext)
    with autocast_context("bf16", cpu):
        out = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    assert has_fast_bfloat16(torch.device("meta")) is False

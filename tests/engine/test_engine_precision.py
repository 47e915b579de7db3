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


@pytest.mark.parametrize("native", [True, False])
def test_amp_auto_follows_the_cpu_capabilities(monkeypatch, native):
    """``auto`` is bf16 autocast exactly when the CPU has native bfloat16 (both branches, by
    faking the probes); ``bf16``/``off`` are what they say on any CPU."""
    import resnet.device as device_module

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    cpu = torch.device("cpu")
    assert device_module.cpu_capabilities()["native_bfloat16"] is native
    assert device_module.resolve_precision("auto", cpu) == ("bf16" if native else "off")
    assert isinstance(autocast_context("auto", cpu), torch.autocast) is native
    assert isinstance(autocast_context("off", cpu), contextlib.nullcontext)
    with autocast_context("bf16", cpu):
        out = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    assert has_fast_bfloat16(torch.device("meta")) is False


@pytest.mark.parametrize("volumes", [False, True], ids=["2d", "3d"])
def test_short_bf16_runs_stay_finite_and_record_their_precision(tmp_path, volumes):
    """bf16 autocast trains a 2D and a 3D net without NaN (master weights, BN statistics, the
    loss and the optimizer state stay float32) and config.yaml says which precision ran."""
    import sys

    import yaml

    from resnet.engine.train import train

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models3d"))
    if volumes:
        from volume_helpers import write_shapes_npz

        data = write_shapes_npz(tmp_path / "shapes.npz", n_train=128, n_test=32)
        model = {"model": "resnet10_3d", "model_kwargs": {"widen_factor": 0.125,
                 "conv1_t_size": 3, "conv1_t_stride": 2, "no_max_pool": True}}  # fmt: skip
    else:
        from engine_helpers import make_npz

        data = make_npz(tmp_path / "bands.npz", train=128, test=32)
        model = {"model": "resnet20"}
    result = train({**model, "dataset": str(data), "epochs": 2, "batch_size": 32, "lr": 0.01,
                    "optimizer": "adamw", "amp": "bf16", "device": "cpu", "num_threads": 1,
                    "runs_dir": str(tmp_path / "runs"), "progress": False,
                    "log_tensorboard": False})  # fmt: skip
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in result.history)
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["amp"] == "bf16"
    auto = train({**model, "dataset": str(data), "epochs": 1, "batch_size": 32, "amp": "auto",
                  "device": "cpu", "num_threads": 1, "runs_dir": str(tmp_path / "runs"),
                  "progress": False, "log_tensorboard": False})  # fmt: skip
    resolved = yaml.safe_load((auto.run_dir / "config.yaml").read_text())["amp"]
    assert resolved == ("bf16" if has_fast_bfloat16(torch.device("cpu")) else "off")

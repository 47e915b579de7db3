"""A run killed with SIGKILL mid-epoch and resumed ends bitwise equal to an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine_helpers import make_npz

SRC = Path(__file__).resolve().parents[2] / "src"


def _command(npz: Path, runs: Path, name: str) -> list[str]:
    return [
        sys.executable, "-m", "resnet", "train", "--dataset", str(npz), "--model", "resnet20",
        "--epochs", "6", "--batch-size", "32", "--lr", "0.05", "--device", "cpu", "--seed", "3",
        "--runs-dir", str(runs), "--name", name, "--no-progress",
        "--set", "log_tensorboard=false", "--set", "num_threads=1", "--set", "ema=0.9",
        "--set", "model_kwargs={drop_path_rate: 0.1}",  # drop-path draws from torch's RNG
    ]  # fmt: skip


def _run(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs
    )


def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    npz = make_npz(tmp_path / "bands.npz", train=512, size=16)
    runs = tmp_path / "runs"
    reference = _run(_command(npz, runs, "reference"))
    killed = _run(_command(npz, runs, "killed"))
    first_checkpoint = runs / "killed" / "last.json"  # the last file a checkpoint writes
    deadline = time.monotonic() + 120
    while not first_checkpoint.exists():
        assert killed.poll() is None, killed.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stopped_at = json.loads((runs / "killed" / "last.json").read_text())["epoch"]
    assert stopped_at < 6, "the run finished before it could be killed"

    resumed = _run([sys.executable, "-m", "resnet", "train", "--resume", str(runs / "killed")])
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    out, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, out

    for name in ("last.safetensors", "best.safetensors"):
        assert (runs / "killed" / name).read_bytes() == (runs / "reference" / name).read_bytes()
    # The resumed run's state (raw weights, momentum, EMA) matches too, not only the EMA copy.
    killed_rows = (runs / "killed" / "metrics.csv").read_text().splitlines()
    reference_rows = (runs / "reference" / "metrics.csv").read_text().splitlines()
    column = lambda rows, i: [r.split(",")[i] for r in rows]  # noqa: E731
    for index in range(6):  # epoch, step, losses, accuracies, lr: not the timings
        assert column(killed_rows, index) == column(reference_rows, index)
    assert len(killed_rows) == 7


def test_mid_epoch_resume_point_after_sigkill_is_bitwise_identical(tmp_path):
    """``save_every_steps``: a run killed inside its first epoch resumes from the step it saved
    (skipping the batches it had trained) and ends bitwise equal to an uninterrupted one."""
    npz = make_npz(tmp_path / "bands.npz", train=512, size=16)
    runs = tmp_path / "runs"
    every = ["--epochs", "2", "--set", "save_every_steps=3"]
    reference = _run([*_command(npz, runs, "reference"), *every])
    killed = _run([*_command(npz, runs, "killed"), *every])
    state = runs / "killed" / "last.state.pt"
    deadline = time.monotonic() + 120
    while not state.exists():
        assert killed.poll() is None, killed.stdout.read()
        assert time.monotonic() < deadline, "no resume point after 120 s"
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (runs / "killed" / "last.json").exists(), "killed too late: an epoch ended"

    resumed = _run([sys.executable, "-m", "resnet", "train", "--resume", str(runs / "killed")])
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    out, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, out
    for name in ("last.safetensors", "best.safetensors"):
        assert (runs / "killed" / name).read_bytes() == (runs / "reference" / name).read_bytes()
    killed_rows = (runs / "killed" / "metrics.csv").read_text().splitlines()
    reference_rows = (runs / "reference" / "metrics.csv").read_text().splitlines()
    strip = lambda rows: [",".join(r.split(",")[:6]) for r in rows]  # noqa: E731
    assert strip(killed_rows) == strip(reference_rows) and len(killed_rows) == 3


def test_resume_refuses_what_would_change_the_run_and_keeps_its_config(tmp_path):
    """--resume may extend a run (epochs), not change its data, split or network: a new
    val_fraction or seed moved validation images into training and went on scoring "val".
    A resume that fails (another optimizer's state) leaves config.yaml as it was: it was
    rewritten first, and the run could no longer be resumed at all."""
    import pytest
    from engine_helpers import tiny_config

    from resnet.engine.train import train
    from resnet.errors import ConfigError, WeightsError

    npz = make_npz(tmp_path / "bands.npz")
    run_dir = train({**tiny_config(npz, tmp_path / "runs", epochs=1), "val_fraction": 0.25}).run_dir
    saved = (run_dir / "config.yaml").read_text()
    for key, value in [("val_fraction", 0.5), ("seed", 3), ("batch_size", 16),
                       ("model", "resnet32"), ("dataset", str(npz) + "x")]:  # fmt: skip
        with pytest.raises(ConfigError, match=f"{key} is .* there, .* given, which would change"):
            train({"epochs": 2, key: value}, resume=run_dir)
    with pytest.raises(WeightsError, match="resume state does not fit"):
        train({"epochs": 2, "optimizer": "adamw"}, resume=run_dir)
    assert (run_dir / "config.yaml").read_text() == saved
    assert train({"epochs": 2}, resume=run_dir).history[-1]["epoch"] == 2

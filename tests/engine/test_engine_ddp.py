"""Two CPU processes (torchrun, gloo on 127.0.0.1) train like one process with the same global
batch.

The comparison uses ``norm_layer="none"``: with BatchNorm each process would normalise its half
batch with its own statistics, a different computation. GroupNorm would be the same computation,
but on these 16-channel nets it is one channel per group over 4x4 maps, whose gradients cancel so
strongly that the float32 rounding difference between one sum of 32 and two sums of 16 grows
~30x per step (measured: 1e-7 after one step, 6e-3 after 16). Without normalisation the only
difference left is that rounding, so the weights agree to 1e-5.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from engine_helpers import make_npz
from safetensors.torch import load_file

from resnet.models import create_model

SRC = Path(__file__).resolve().parents[2] / "src"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    npz = make_npz(tmp_path / "bands.npz", train=256, size=16)
    train_args = [
        "-m", "resnet", "train", "--dataset", str(npz), "--model", "resnet20", "--epochs", "1",
        "--batch-size", "32", "--lr", "0.01", "--device", "cpu", "--runs-dir", str(tmp_path),
        "--no-progress", "--set", "model_kwargs={norm_layer: none}",
        "--set", "log_tensorboard=false", "--set", "num_threads=1",
        "--set", "amp=off",  # float32: bf16 autocast (on by default where native) rounds more
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    launcher = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
    ]  # fmt: skip
    ddp = subprocess.run(
        [*launcher, *train_args, "--name", "ddp"], env=env, capture_output=True, text=True
    )
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    single = subprocess.run(
        [sys.executable, *train_args, "--name", "single"], env=env, capture_output=True, text=True
    )
    assert single.returncode == 0, single.stdout + single.stderr

    # Only rank 0 writes: one run directory, one header line of the column log.
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["ddp", "single"]
    assert ddp.stdout.count("img/s") == 1 and ddp.stdout.count("run saved in") == 1
    assert "x 2 processes" in ddp.stdout
    ddp_weights = load_file(str(tmp_path / "ddp" / "last.safetensors"))
    single_weights = load_file(str(tmp_path / "single" / "last.safetensors"))
    assert ddp_weights.keys() == single_weights.keys()
    # One epoch (8 steps): the two differ only by the order of float32 sums (the batch split,
    # ~1e-7). This net without BatchNorm amplifies such rounding chaotically: by the 12th step
    # it was 1.5e-5 with PyTorch's own kernels (measured), which says nothing about DDP.
    for name, value in single_weights.items():
        torch.testing.assert_close(ddp_weights[name], value, rtol=0, atol=1e-5, msg=name)
    # Training moved the weights far more than that tolerance: train() seeds, then builds.
    torch.manual_seed(0)
    initial = create_model("resnet20", num_classes=4, in_chans=1, norm_layer="none")
    moved = (initial.conv1.weight - single_weights["conv1.weight"]).abs().max()
    assert moved > 1e-3


def test_sync_batchnorm_matches_one_process_of_the_global_batch(tmp_path):
    """``sync_bn``: two processes normalise with the statistics of the whole global batch, so
    BatchNorm's running statistics and the weights equal those of one process with the same
    global batch; without it, each half batch has its own statistics and they differ."""
    npz = make_npz(tmp_path / "bands.npz", train=128, size=16)
    common = [
        "-m", "resnet", "train", "--dataset", str(npz), "--model", "resnet20", "--epochs", "1",
        "--batch-size", "32", "--lr", "0.01", "--device", "cpu", "--runs-dir", str(tmp_path),
        "--no-progress", "--set", "log_tensorboard=false", "--set", "num_threads=1",
        "--set", "amp=off", "--set", "augment=false",
        # One step: later steps amplify float32 rounding (1e-7 -> 1e-4 in 4 steps, measured).
        "--max-steps", "1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    launcher = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
    ]  # fmt: skip
    runs = {
        "single": [sys.executable, *common],
        "synced": [*launcher, *common, "--set", "sync_bn=true"],
        "unsynced": [*launcher[:-1], f"--master_port={_free_port()}", *common],
    }
    for name, command in runs.items():
        done = subprocess.run([*command, "--name", name], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    weights = {name: load_file(str(tmp_path / name / "last.safetensors")) for name in runs}
    stats = [k for k in weights["single"] if k.endswith(("running_mean", "running_var"))]
    assert len(stats) == 2 * 19  # every BatchNorm of resnet20
    synced = max(
        (weights["synced"][k] - weights["single"][k]).abs().max() for k in weights["single"]
    )
    unsynced = max((weights["unsynced"][k] - weights["single"][k]).abs().max() for k in stats)
    assert synced < 1e-5, synced
    assert unsynced > 1e-3, unsynced

"""``resnet train`` on a MedMNIST-3D-layout ``.npz``: the whole pipeline with 5D inputs."""

from __future__ import annotations

import json

import torch
from volume_helpers import write_shapes_npz

from resnet.cli import main
from resnet.engine.checkpoint import load_checkpoint


def test_train_cli_learns_balls_from_cubes(tmp_path, capsys):
    data = write_shapes_npz(tmp_path / "shapes3d.npz")
    kwargs = {"widen_factor": 0.125, "conv1_t_size": 3, "conv1_t_stride": 2, "no_max_pool": True}
    argv = ["train", "--model", "resnet10_3d", "--dataset", str(data), "--epochs", "3"]
    argv += ["--batch-size", "32", "--lr", "0.003", "--runs-dir", str(tmp_path / "runs")]
    argv += ["--name", "shapes", "--no-progress", "--set", "optimizer=adamw"]
    argv += ["--set", f"model_kwargs={json.dumps(kwargs)}", "--set", "num_threads=1"]
    assert main(argv) == 0, capsys.readouterr().err

    model, info = load_checkpoint(tmp_path / "runs" / "shapes")
    assert info["model_name"] == "resnet10_3d"
    assert info["data_meta"]["image_size"] == [16, 16, 16]
    assert info["data_meta"]["class_names"] == ["ball", "cube"]
    assert isinstance(model.conv1, torch.nn.Conv3d) and model.conv1.in_channels == 1
    # Epochs are scored (best kept) on the file's own val split; the final model on its 256
    # test volumes, balanced: chance is about 50%.
    assert info["metrics"]["val_acc"] >= 0.9, info["metrics"]
    final = json.loads((tmp_path / "runs" / "shapes" / "results.json").read_text())
    assert final["test_acc"] >= 0.9, final

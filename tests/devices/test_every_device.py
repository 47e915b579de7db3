"""The paths a GPU user runs, on every device this machine has: the CPU always, and each CUDA
GPU when one is visible (``bench/gpu_check.sh`` runs this file on a GPU machine).

Each test compares the device's numbers with the CPU's or checks what the run wrote, so a path
that silently falls back to the CPU, or breaks on CUDA, fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from resnet.run import Run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_helpers import make_npz, tiny_config  # noqa: E402

DEVICES = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


def test_run_resolves_the_device_once(device):
    run = Run.open(device=device)
    assert run.device == torch.device(device)


def test_engine_trains_and_resumes_on_the_device(device, tmp_path):
    from resnet.engine.train import train

    npz = make_npz(tmp_path / "bands.npz", train=256, test=64)
    config = tiny_config(npz, tmp_path / "runs", device=device, epochs=3)
    result = train(config)
    assert result.run_dir.name == "tiny" and len(result.history) == 3
    assert result.history[-1]["test_acc"] > 0.5  # 4 classes: chance is 0.25
    text = (result.run_dir / "config.yaml").read_text()
    assert f"device: {device}" in text
    resumed = train({"epochs": 4}, resume=result.run_dir)
    assert len(resumed.history) == 4


def test_detector_trains_on_the_device(device, tmp_path):
    from safetensors.torch import load_file

    from resnet.detection import train_detector

    summary = train_detector(epochs=1, train_images=4, batch_size=2, device=device,
                             out=tmp_path / "det", log=lambda _line: None)  # fmt: skip
    assert summary.steps == 2
    weights = load_file(str(tmp_path / "det" / "detector.safetensors"))
    assert all(torch.isfinite(v.float()).all() for v in weights.values())


def test_gradcam_on_the_device_equals_the_cpu(device):
    from resnet import create_model, gradcam

    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=4).eval()
    x = torch.randn(2, 3, 32, 32)
    reference, _ = gradcam(model, x, class_idx=[0, 3])
    heatmaps, _ = gradcam(model.to(device), x.to(device), class_idx=[0, 3])
    assert heatmaps.device.type == torch.device(device).type
    torch.testing.assert_close(heatmaps.cpu(), reference, atol=1e-3, rtol=1e-3)


def test_export_of_a_model_trained_on_the_device(device, tmp_path):
    pytest.importorskip("onnxruntime")
    from resnet.deploy.export import export_model
    from resnet.deploy.runtime import OnnxModule
    from resnet.engine.checkpoint import load_checkpoint
    from resnet.engine.train import train

    npz = make_npz(tmp_path / "bands.npz", train=64, test=32)
    result = train(tiny_config(npz, tmp_path / "runs", device=device, epochs=1))
    export_model(result.run_dir, "onnx", tmp_path / "model.onnx")
    path = tmp_path / "model.onnx"
    model, _ = load_checkpoint(result.run_dir)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(OnnxModule(path)(x), model.eval()(x), atol=1e-4, rtol=1e-4)


def test_demo_runs_on_the_device(device, tmp_path):
    from resnet.experiments.demo import DemoBudget, run_demo

    npz = make_npz(tmp_path / "bands.npz", train=64, test=32)
    budget = DemoBudget(gradflow_depth=20, gradflow_steps=1, depths=(20, 32), train_subset=None,
                        test_subset=None, epochs=1, batch_size=32, lesion_subset=16)  # fmt: skip
    results = run_demo(out_dir=tmp_path / "demo", dataset=str(npz), device=device,
                       budget=budget, progress=False)  # fmt: skip
    assert results["meta"]["device"] == device
    assert (tmp_path / "demo" / "report.md").is_file()

"""int8 ONNX export and OnnxModule: a trained network keeps its predictions, bad input fails."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")  # guard only: CI installs the export extra

from resnet import OnnxModule, create_model, export_model, quantize_int8  # noqa: E402
from resnet.cli import main  # noqa: E402
from resnet.data import DatasetMeta, channel_mean_std  # noqa: E402
from resnet.deploy.export import ExportError  # noqa: E402
from resnet.engine.checkpoint import save_checkpoint  # noqa: E402
from resnet.errors import ConfigError, DataError, WeightsError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 12
CLASS_NAMES = ["top-left", "top-right", "bottom-left", "bottom-right"]


def quadrant_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 1, 12, 12) noise whose class is the quadrant made a little brighter.

    The brightening (0.15 on noise of range 1) is faint enough that a briefly trained net gets
    about 90% right, so the accuracies compared below are not both a trivial 100%.
    """
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=generator)
    images = torch.rand(n, 1, SIZE, SIZE, generator=generator)
    half = SIZE // 2
    for k in range(4):
        row, col = divmod(k, 2)
        images[labels == k, :, row * half : (row + 1) * half, col * half : (col + 1) * half] += 0.15
    return (images / 1.15 * 255).round().to(torch.uint8), labels


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A resnet20 trained for 60 SGD steps, its checkpoint, its data (.npz) and its test set."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures cannot use the function-scoped one_thread
    try:
        root = tmp_path_factory.mktemp("int8")
        train_u8, train_y = quadrant_images(2048, seed=0)
        test_u8, test_y = quadrant_images(256, seed=1)
        npz = root / "quadrants.npz"
        np.savez(
            npz,
            train_images=train_u8[:, 0].numpy(),
            train_labels=train_y.numpy(),
            test_images=test_u8[:, 0].numpy(),
            test_labels=test_y.numpy(),
            class_names=np.array(CLASS_NAMES),
        )
        mean, std = channel_mean_std(train_u8)
        meta = DatasetMeta("quadrants", CLASS_NAMES, 1, (SIZE, SIZE), mean, std)

        def normalise(images: torch.Tensor) -> torch.Tensor:
            return (images.float() / 255 - mean[0]) / std[0]

        torch.manual_seed(0)
        model = create_model("resnet20", num_classes=4, in_chans=1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        x = normalise(train_u8)
        for _ in range(60):
            index = torch.randint(0, len(x), (64,))
            loss = torch.nn.functional.cross_entropy(model(x[index]), train_y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        stem = root / "run" / "best"
        config = {"dataset": str(npz), "val_fraction": 0.0}
        save_checkpoint(stem, model, data_meta=meta, epoch=1, step=60, metrics={}, config=config)
        return {
            "stem": stem,
            "model": model,
            "meta": meta,
            "npz": npz,
            "calibration": x[:64],
            "test": (normalise(test_u8), test_y),
        }
    finally:
        torch.set_num_threads(threads)


def test_int8_model_keeps_the_fp32_predictions(run, capfd):
    import onnx

    report = quantize_int8(run["stem"], calibration=run["calibration"], check=run["test"])
    out = run["stem"].parent / "best.int8.onnx"  # the default: beside the checkpoint
    assert report["path"] == str(out) and report["bytes"] == out.stat().st_size
    assert report["accuracy_fp32"] > 0.8  # the net learned the task, so agreement means something
    assert report["top1_agreement"] >= 0.95
    assert abs(report["accuracy_int8"] - report["accuracy_fp32"]) <= 0.05
    assert report["check_samples"] == 256 and report["calibration"] == "given, 64 images"
    assert capfd.readouterr() == ("", "")  # the quantizer's advice and logs stay quiet

    ops = Counter(node.op_type for node in onnx.load(str(out)).graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["QuantizeLinear"]
    assert report["bytes"] < 0.5 * report["fp32_bytes"]  # int8 weights: about a quarter

    runtime = OnnxModule(out, threads=1)
    assert runtime.metadata["class_names"] == CLASS_NAMES
    assert runtime.metadata["quantization"] == {
        "scheme": "static int8, per-channel weights, QDQ",
        "calibration": "given, 64 images",
    }
    assert runtime.metadata["input_shape"] == [-1, 1, SIZE, SIZE]
    images, _ = run["test"]
    with torch.no_grad():  # the report's agreement, recomputed from the written file
        same = (runtime(images).argmax(1) == run["model"](images).argmax(1)).float().mean()
    assert same.item() == pytest.approx(report["top1_agreement"])


def test_checkpoint_calibrates_and_checks_on_its_own_dataset(run, tmp_path):
    report = quantize_int8(run["stem"], tmp_path / "q.onnx", calibration_samples=128)
    assert report["calibration"] == "quadrants train, 128 images"
    assert report["check"] == "quadrants test" and report["check_samples"] == 256
    # The npz's test split is the test tensor of the other tests: same accuracy in PyTorch.
    images, labels = run["test"]
    with torch.no_grad():
        expected = (run["model"](images).argmax(1) == labels).float().mean().item()
    assert report["accuracy_fp32"] == pytest.approx(expected)
    assert report["top1_agreement"] >= 0.95


def test_arrays_of_another_size_calibrate_and_check_at_the_models(run, tmp_path):
    """Arrays of another size are resized to the checkpoint's as training resizes them (they
    used to be refused): the fp32 score is the model's on torchvision-resized images."""
    from resnet.data import load_dataset, resize_arrays

    with np.load(run["npz"]) as arrays:
        bigger = {k: (np.kron(v, np.ones((1, 2, 2), v.dtype)) if k.endswith("images") else v)
                  for k, v in arrays.items()}  # fmt: skip
    np.savez(tmp_path / "bigger.npz", **bigger)
    data = str(tmp_path / "bigger.npz")
    report = quantize_int8(run["stem"], tmp_path / "q.onnx", calibration=data, check=data)
    test = load_dataset(data, "test")
    assert test.meta.image_size == (2 * SIZE, 2 * SIZE)
    images = resize_arrays(test.images, SIZE).float() / 255
    images = (images - run["meta"].mean[0]) / run["meta"].std[0]
    with torch.no_grad():
        expected = (run["model"](images).argmax(1) == test.labels).float().mean().item()
    assert report["accuracy_fp32"] == pytest.approx(expected)


@pytest.mark.parametrize("min_agreement", [1.01, -0.1, float("nan")])
def test_agreement_that_is_not_a_fraction_is_refused_first(run, tmp_path, min_agreement):
    """1.01 could never be met: it failed only after calibrating and checking."""
    with pytest.raises(ConfigError, match=r"min_agreement must be a fraction in \[0, 1\]"):
        quantize_int8(run["stem"], tmp_path / "m.int8.onnx", min_agreement=min_agreement)
    assert list(tmp_path.iterdir()) == []


def test_calibration_images_holding_nan_are_refused(run, tmp_path):
    images = run["calibration"].clone()
    images[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="train images hold NaN or infinite values"):
        quantize_int8(run["stem"], tmp_path / "m.int8.onnx", calibration=images)


def test_calibration_on_unnormalised_images_fails_the_check(run, tmp_path):
    # Pixels on 0..1 instead of (x - mean) / std: the activation ranges come out wrong, and
    # the check against fp32 (about 80% agreement here) must stop the file from being written.
    raw, _ = quadrant_images(64, seed=0)
    out = tmp_path / "raw.int8.onnx"
    with pytest.raises(ExportError, match=r"agrees with PyTorch fp32 on only \d"):
        quantize_int8(run["stem"], out, calibration=raw.float() / 255, check=run["test"])
    assert list(tmp_path.iterdir()) == []  # not even a temporary file


def test_bare_model_needs_calibration_data(tmp_path):
    with pytest.raises(ConfigError, match="calibration"):
        quantize_int8(create_model("resnet20", in_chans=1), tmp_path / "m.onnx")


def test_onnx_module_matches_pytorch_fp32(run, tmp_path):
    path = tmp_path / "fp32.onnx"
    report = export_model(run["model"], "onnx", path, data_meta=run["meta"])
    runtime = OnnxModule(path, threads=1)
    assert runtime.metadata == report["metadata"]
    x = torch.randn(5, 1, SIZE, SIZE)
    with torch.no_grad():
        expected = run["model"](x)
    got = runtime(x)
    assert got.dtype == torch.float32 and got.shape == (5, 4)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(OnnxModule(path.read_bytes())(x), got, rtol=0, atol=0)


def test_onnx_module_rejects_input_of_the_wrong_shape(run, tmp_path):
    path = tmp_path / "fp32.onnx"
    export_model(run["model"], "onnx", path, data_meta=run["meta"])
    runtime = OnnxModule(path)
    for bad in (torch.randn(2, 3, SIZE, SIZE), torch.randn(2, 1, 16, 16), torch.randn(1, SIZE)):
        with pytest.raises(DataError) as raised:
            runtime(bad)
        message = str(raised.value)
        assert "(N, 1, 12, 12)" in message and str(tuple(bad.shape)) in message
        assert len(message.splitlines()) == 1


def test_onnx_module_names_a_bad_file(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not onnx")
    for path in (corrupt, tmp_path / "missing.onnx"):
        with pytest.raises(WeightsError) as raised:
            OnnxModule(path)
        message = str(raised.value)
        assert str(path) in message and len(message.splitlines()) == 1


def test_cli_int8_needs_onnx(run, tmp_path, capsys):
    argv = ["export", "--checkpoint", str(run["stem"]), "--format", "torchscript", "--int8"]
    assert main([*argv, "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet: error:") and "--format onnx" in err
    assert len(err.splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_cli_int8_reports_agreement(run, tmp_path, capsys):
    out = tmp_path / "cli.int8.onnx"
    data = str(run["npz"])
    argv = ["export", "--checkpoint", str(run["stem"]), "--format", "onnx", "--int8"]
    argv += ["--calibration-data", data, "--check-data", data, "--calibration-samples", "64"]
    assert main([*argv, "--check-samples", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    line = re.search(
        r"checked on 256 quadrants test images: top-1 agreement with PyTorch fp32 ([\d.]+)%, "
        r"accuracy fp32 ([\d.]+)% -> int8 ([\d.]+)%",
        printed,
    )
    assert line is not None, printed
    agreement, fp32, int8 = (float(g) for g in line.groups())
    assert agreement >= 95 and abs(fp32 - int8) <= 5 and out.is_file()
    assert f"wrote {out}" in printed


def test_evaluate_and_predict_take_exported_files(run, tmp_path, capsys):
    from PIL import Image

    from resnet.deploy.evaluate import evaluate
    from resnet.deploy.predict import predict

    fp32_path, int8_path = tmp_path / "m.onnx", tmp_path / "m.int8.onnx"
    export_model(run["stem"], "onnx", fp32_path)
    report = quantize_int8(
        run["stem"], int8_path, calibration=run["calibration"], check=run["test"]
    )
    # The files name the checkpoint's dataset (the .npz), so evaluate finds it by itself.
    reference = evaluate(run["stem"], device="cpu")
    scored = evaluate(fp32_path, device="cpu")
    assert scored["confusion_matrix"] == reference["confusion_matrix"]
    assert scored["loss"] == pytest.approx(reference["loss"], abs=1e-5)
    assert evaluate(int8_path)["top1"] == pytest.approx(report["accuracy_int8"], abs=1 / 256)

    test_u8, _ = quadrant_images(4, seed=3)
    paths = []
    for k, image in enumerate(test_u8[:, 0].numpy()):
        paths.append(tmp_path / f"{k}.png")
        Image.fromarray(image).save(paths[-1])
    expected = predict(run["stem"], paths, topk=2, device="cpu")
    got = predict(fp32_path, paths, topk=2)
    assert [row["label"] for row in got] == [row["label"] for row in expected]
    for mine, theirs in zip(got, expected):
        assert mine["prob"] == pytest.approx(theirs["prob"], abs=1e-4)

    argv = ["eval", "--checkpoint", str(int8_path), "--dtype", "bfloat16"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "precision it was exported with" in err and len(err.splitlines()) == 1

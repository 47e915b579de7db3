"""Export round trips (ONNX, TorchScript, pt2): same outputs, preprocessing in the metadata."""

from __future__ import annotations

import json

import pytest
import torch

from resnet import create_model, export_model
from resnet.cli import main
from resnet.data import DatasetMeta
from resnet.deploy.export import META_FILE, ExportError, read_export_metadata
from resnet.engine.checkpoint import save_checkpoint
from resnet.errors import ConfigError, WeightsError

META = DatasetMeta(
    name="tiny-fashion",
    class_names=[f"class{k}" for k in range(4)],
    channels=1,
    image_size=(28, 28),
    mean=(0.286,),
    std=(0.353,),
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _randomize_batch_norms(model: torch.nn.Module) -> None:
    # Non-trivial statistics, as after training, so the BN fold is really exercised.
    with torch.no_grad():
        for norm in model.modules():
            if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm):
                norm.running_mean.uniform_(-0.5, 0.5)
                norm.running_var.uniform_(0.5, 2.0)
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.2, 0.2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=4, in_chans=1)
    _randomize_batch_norms(model)
    stem = tmp_path_factory.mktemp("run") / "best"
    save_checkpoint(stem, model, data_meta=META, epoch=1, step=10, metrics={"test_acc": 0.5})
    return stem, model.eval()


def _assert_metadata_matches(metadata: dict) -> None:
    assert metadata["model_name"] == "resnet20"
    assert metadata["class_names"] == META.class_names
    assert metadata["channels"] == 1 and metadata["image_size"] == [28, 28]
    assert metadata["mean"] == list(META.mean) and metadata["std"] == list(META.std)
    assert metadata["input_shape"] == [-1, 1, 28, 28]


def test_onnx_round_trip_through_onnxruntime(checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")  # guard only: CI installs the export extra
    import onnx
    import onnxruntime

    stem, model = checkpoint
    report = export_model(stem, "onnx", tmp_path / "model.onnx")
    assert report["max_abs_diff"] < 1e-4 and "onnxruntime" in report["checked_with"]
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    x = torch.randn(5, 1, 28, 28)  # another batch size than the export's: the batch is dynamic
    (logits,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        assert (torch.from_numpy(logits) - model(x)).abs().max() < 1e-4
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert json.loads(props["resnet.class_names"]) == META.class_names
    _assert_metadata_matches(read_export_metadata(tmp_path / "model.onnx"))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_round_trip(checkpoint, tmp_path):
    stem, model = checkpoint
    report = export_model(stem, "torchscript", tmp_path / "model.pt")
    extra = {META_FILE: ""}
    loaded = torch.jit.load(str(tmp_path / "model.pt"), _extra_files=extra)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=1e-4)
    _assert_metadata_matches(json.loads(extra[META_FILE]))
    assert report["metadata"] == json.loads(extra[META_FILE])


def test_pt2_round_trip(checkpoint, tmp_path):
    stem, model = checkpoint
    export_model(stem, "pt2", tmp_path / "model.pt2")
    extra = {META_FILE: ""}
    program = torch.export.load(str(tmp_path / "model.pt2"), extra_files=extra)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=0, atol=1e-4)
    _assert_metadata_matches(json.loads(extra[META_FILE]))


def test_volume_model_exports_to_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    classes = len(META.class_names)
    model = create_model(
        "resnet10_3d", num_classes=classes, in_chans=1, widen_factor=0.125, conv1_t_size=3
    )
    volume_meta = {**META.to_dict(), "image_size": [16, 16, 16]}
    report = export_model(model, "onnx", tmp_path / "vol.onnx", data_meta=volume_meta)
    assert report["max_abs_diff"] < 1e-4
    assert report["metadata"]["input_shape"] == [-1, 1, 16, 16, 16]
    with pytest.raises(ConfigError, match="channel"):
        export_model(model, "onnx", tmp_path / "x.onnx", data_meta=META)  # 2D meta, 3D model


@pytest.mark.parametrize("name", ["resnet10t", "preact_resnet18d"])
def test_deep_stem_models_export_with_their_channels(tmp_path, name):
    """Export read the input channels from ``conv1.in_channels``, which a deep stem's
    ``conv1`` (a Sequential) lacks: every ResNet-C/D/T failed with an AttributeError."""
    pytest.importorskip("onnxruntime")
    model = create_model(name, num_classes=len(META.class_names), in_chans=META.channels)
    report = export_model(model, "onnx", tmp_path / "deep.onnx", data_meta=META)
    assert report["metadata"]["input_shape"] == [-1, META.channels, *META.image_size]


def test_the_check_scales_with_the_size_of_the_outputs(tmp_path):
    """Logits of ~1e4 round to ~1e-3 in float32: a fixed 1e-4 refused every such export."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=len(META.class_names), in_chans=META.channels)
    with torch.no_grad():
        model.fc.weight.mul_(1e5)
    report = export_model(model, "onnx", tmp_path / "big.onnx", data_meta=META)
    assert report["max_abs_diff"] > 1e-4 and report["max_abs_diff"] <= report["limit"]
    with pytest.raises(ExportError, match=r"atol 0\.0001 \+ rtol 0 x max \|output\|"):
        export_model(model, "onnx", tmp_path / "strict.onnx", data_meta=META, rtol=0)


def test_cli_export_reports_diff_and_writes_file(checkpoint, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    stem, _ = checkpoint
    out = tmp_path / "cli.onnx"
    assert main(["export", "--checkpoint", str(stem), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "max |diff|" in printed and out.is_file()


def test_cli_export_fails_with_exit_2_when_check_fails(checkpoint, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    stem, _ = checkpoint
    out = tmp_path / "strict.onnx"
    argv = ["export", "--checkpoint", str(stem), "--format", "onnx", "--out", str(out)]
    assert main([*argv, "--atol", "1e-12", "--rtol", "0"]) == 2  # float32 never agrees to 1e-12
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet: error:") and "differs from PyTorch" in err
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary file


def test_cli_export_bad_inputs_exit_2(checkpoint, tmp_path, capsys):
    stem, _ = checkpoint
    corrupt = tmp_path / "broken"
    (tmp_path / "broken.json").write_text((stem.parent / "best.json").read_text())
    (tmp_path / "broken.safetensors").write_bytes(b"\x00not safetensors")
    for argv in (
        ["export", "--checkpoint", str(corrupt), "--format", "torchscript"],
        ["export", "--checkpoint", str(tmp_path / "missing"), "--format", "pt2"],
        ["export", "--checkpoint", str(stem), "--format", "tflite"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err and "Traceback" not in err
    assert main(["export", "--checkpoint", str(corrupt), "--format", "pt2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.safetensors" in err


@pytest.mark.parametrize(
    "fmt, name",
    [("onnx", "photo.png"), ("onnx", "best.safetensors"), ("torchscript", "model.onnx"),
     ("pt2", "model.pt"), ("onnx", "model"), ("torchscript", "model.pt2")],
)  # fmt: skip
def test_an_export_never_replaces_a_file_of_another_kind(checkpoint, tmp_path, capsys, fmt, name):
    """Readers tell the formats apart by suffix, so a file named otherwise is refused before
    anything is written: `--out photo.png` once replaced the photo with an ONNX graph."""
    stem, _ = checkpoint
    victim = tmp_path / name
    victim.write_bytes(b"the user's own file")
    argv = ["export", "--checkpoint", str(stem), "--format", fmt, "--out", str(victim)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    kind = {"onnx": "an ONNX", "torchscript": "a TorchScript", "pt2": "a pt2"}[fmt]
    assert len(err.splitlines()) == 1 and f"{kind} file's name must end in" in err
    assert victim.read_bytes() == b"the user's own file"
    with pytest.raises(ConfigError, match="name must end in"):
        export_model(stem, fmt, victim)


def test_int8_export_refuses_a_name_other_than_onnx(checkpoint, tmp_path):
    from resnet.deploy.quantize import quantize_int8

    stem, _ = checkpoint
    with pytest.raises(ConfigError, match=r"use e.g. .*best\.onnx"):
        quantize_int8(stem, tmp_path / "best.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_export_of_unknown_format_raises(tmp_path):
    with pytest.raises(ConfigError, match="onnx, torchscript, pt2"):
        export_model(create_model("resnet20"), "coreml", tmp_path / "model.mlmodel")
    assert not (tmp_path / "model.mlmodel").exists()


@pytest.mark.parametrize(
    "options, message",
    [({"atol": float("nan")}, "atol must be a finite number >= 0"),
     ({"atol": -1.0}, "atol must be a finite number >= 0"),
     ({"rtol": float("inf")}, "rtol must be a finite number >= 0"),
     ({"opset": 9}, "opset 9 is not supported: use 10 or newer"),
     ({"opset": 17.5}, "opset 17.5 is not supported")],
)  # fmt: skip
def test_check_options_are_refused_before_any_work(checkpoint, tmp_path, capfd, options, message):
    """atol=-1 failed after exporting with 'differs by 4e-06 (> -1)'; an old opset printed the
    whole traced graph before its error. Both now fail first, for export and int8 alike."""
    from resnet.deploy.quantize import quantize_int8

    stem, _ = checkpoint
    with pytest.raises(ConfigError, match=message):
        export_model(stem, "onnx", tmp_path / "m.onnx", **options)
    if "opset" in options:
        with pytest.raises(ConfigError, match=message):
            quantize_int8(stem, tmp_path / "m.int8.onnx", **options)
    assert list(tmp_path.iterdir()) == [] and "graph(" not in capfd.readouterr().err


def test_a_failed_onnx_export_prints_nothing_but_its_error_line(checkpoint, tmp_path, capfd):
    """torch's exporter printed the whole traced graph (hundreds of lines) before failing."""
    pytest.importorskip("onnxruntime")
    stem, _ = checkpoint
    argv = ["export", "--checkpoint", str(stem), "--format", "onnx", "--opset", "99"]
    assert main([*argv, "--out", str(tmp_path / "m.onnx")]) == 2
    out, err = capfd.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("resnet: error: onnx export of") and "graph(" not in err
    assert list(tmp_path.iterdir()) == []


def test_class_names_must_name_every_output(tmp_path):
    """An export whose class names do not match the network's outputs is refused (it used to
    be written with exit 0); so is an exported file whose metadata was edited to mismatch."""
    pytest.importorskip("onnxruntime")
    model = create_model("resnet20", num_classes=len(META.class_names) + 1, in_chans=1)
    with pytest.raises(ConfigError, match=r"names \d+ classes but resnet20 has \d+ outputs"):
        export_model(model, "onnx", tmp_path / "x.onnx", data_meta=META)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_eval_and_predict_run_every_exported_format_as_the_checkpoint(checkpoint, tmp_path):
    """`resnet eval --checkpoint model.pt2` (or a TorchScript file) failed with "an exported
    model (torch.export.load runs it)"; only ONNX ran. All three now score as the checkpoint."""
    pytest.importorskip("onnxruntime")
    import numpy as np

    from resnet.deploy.evaluate import evaluate
    from resnet.deploy.predict import predict

    stem, model = checkpoint
    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    arrays = {f"{s}_{k}": v for s, n in (("train", 16), ("test", 24)) for k, v in (
        ("images", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
        ("labels", rng.integers(0, 4, n)))}  # fmt: skip
    np.savez(data, **arrays, class_names=np.array(META.class_names))
    image = tmp_path / "shoe.png"
    from PIL import Image

    Image.fromarray(arrays["test_images"][0]).save(image)
    reference = evaluate(stem, dataset=str(data), device="cpu", dtype="float32")
    expected = predict(stem, [image], topk=4, device="cpu")[0]["topk"]
    for fmt, name in (("onnx", "m.onnx"), ("torchscript", "m.pt"), ("pt2", "m.pt2")):
        export_model(stem, fmt, tmp_path / name)
        scored = evaluate(tmp_path / name, dataset=str(data), device="cpu")
        assert scored["confusion_matrix"] == reference["confusion_matrix"], fmt
        assert scored["loss"] == pytest.approx(reference["loss"], abs=1e-5), fmt
        got = predict(tmp_path / name, [image], topk=4, device="cpu")[0]["topk"]
        assert [r["index"] for r in got] == [r["index"] for r in expected], fmt
        assert [r["prob"] for r in got] == pytest.approx([r["prob"] for r in expected], abs=1e-5)
    with pytest.raises(ConfigError, match="keeps the precision it was exported with"):
        evaluate(tmp_path / "m.pt2", dataset=str(data), device="cpu", dtype="bfloat16")
    (tmp_path / "broken.pt2").write_bytes(b"not a program")
    with pytest.raises(WeightsError, match="broken.pt2: not a readable exported model"):
        evaluate(tmp_path / "broken.pt2", dataset=str(data), device="cpu")


@pytest.mark.parametrize(
    "contents, cause",
    [
        ("text", "PytorchStreamReader failed reading zip archive: not a ZIP archive\\)"),
        ("zip", "file in archive is not in a subdirectory: a.txt\\)"),
    ],
)
def test_a_broken_pt2_file_is_one_line_and_torch_logs_nothing(tmp_path, capfd, contents, cause):
    """torch.export.load logs a broken archive's traceback (a dozen lines of stderr) and then
    raises "check the warnings above": the cause now comes in the one error, and no log."""
    import zipfile

    from resnet.deploy.runtime import load_inference_model

    path = tmp_path / "broken.pt2"
    if contents == "text":
        path.write_text("not a program")
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("a.txt", "x")
    with pytest.raises(WeightsError, match=f"broken.pt2: not a readable exported model \\({cause}"):
        load_inference_model(path)
    assert capfd.readouterr().err == ""

"""``resnet detect``: bad input is one line on stderr and exit code 2; good input writes PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from resnet.cli import main
from resnet.detection.detector import DetectorConfig, build_detector, save_detector
from resnet.detection.draw import save_png
from resnet.detection.train import train_detector
from resnet.errors import ConfigError

CLASSES = ["T-shirt/top", "Trouser", "Pullover"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained detector saved as `resnet detect train` would save it."""
    folder = tmp_path_factory.mktemp("detector")
    torch.manual_seed(0)
    config = DetectorConfig(class_names=CLASSES, canvas_size=64)
    save_detector(build_detector(config), config, folder)
    return folder


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("resnet: error: ")
    return err


def test_missing_checkpoint_exits_2(tmp_path, capsys) -> None:
    assert main(["detect", "eval", str(tmp_path / "nothing"), "--device", "cpu"]) == 2
    assert "detect train" in _error_line(capsys)
    assert main(["detect", "predict", str(tmp_path / "nothing"), "--device", "cpu"]) == 2
    _error_line(capsys)


def test_corrupt_checkpoint_exits_2(checkpoint, tmp_path, capsys) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "detector.json").write_text((checkpoint / "detector.json").read_text())
    (broken / "detector.safetensors").write_bytes(b"\x00" * 64)
    assert main(["detect", "eval", str(broken), "--device", "cpu"]) == 2
    assert "detector.safetensors" in _error_line(capsys)


def test_non_image_input_exits_2(checkpoint, tmp_path, capsys) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("this is not a PNG")
    code = main(["detect", "predict", str(checkpoint), str(fake), "--device", "cpu",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2
    assert "notes.png" in _error_line(capsys)
    assert not (tmp_path / "out" / "notes_boxes.png").exists()


def test_bad_training_options_exit_2(tmp_path, capsys) -> None:
    assert main(["detect", "train", "--epochs", "0", "--out", str(tmp_path)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # argparse: usage, then one error
    assert "argument --epochs: expected a whole number >= 1, got '0'" in last
    assert main(["detect", "train", "--model", "resnet20", "--out", str(tmp_path)]) == 2
    assert "ImageNet-family" in _error_line(capsys)


def test_resume_applies_epochs_and_lr_and_refuses_what_changes_the_run(tmp_path, capsys):
    """`resnet detect train --resume RUN --epochs 2` read the run's config.yaml and dropped
    every flag: the epochs asked for never ran, a new --canvas-size was ignored silently."""
    run = tmp_path / "det"
    small = ["--train-images", "4", "--batch-size", "2", "--canvas-size", "64", "--device", "cpu"]
    assert main(["detect", "train", "--epochs", "1", *small, "--out", str(run)]) == 0
    capsys.readouterr()
    settings = (run / "config.yaml").read_text()
    for flag, value in (("--canvas-size", "96"), ("--model", "resnet34"), ("--seed", "3")):
        assert main(["detect", "train", "--resume", str(run), "--epochs", "2", flag, value]) == 2
        assert f"drop {flag}, or start a new run" in _error_line(capsys)
    assert (run / "config.yaml").read_text() == settings
    resumed = ["detect", "train", "--resume", str(run), "--epochs", "2", "--lr", "0.01"]
    assert main([*resumed, "--canvas-size", "64", "--device", "cpu"]) == 0  # the same: fine
    assert "trained 4 steps" in capsys.readouterr().out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["epochs"] == 2 and saved["lr"] == 0.01 and saved["canvas_size"] == 64


@pytest.mark.parametrize("where", [[], ["--out", "mine"]])
def test_canvas_too_small_for_its_items_leaves_no_run_folder(tmp_path, capsys, monkeypatch, where):
    monkeypatch.chdir(tmp_path)  # the default run folder would go to ./runs
    assert main(["detect", "train", "--canvas-size", "8", *where]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # argparse: usage, then one error
    assert "argument --canvas-size: expected a whole number from 32 to 4096, got '8'" in last
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="item_sizes \\(12, 12\\) must satisfy"):
        train_detector(canvas_size=8, out=tmp_path / "mine")
    assert list(tmp_path.iterdir()) == []


def test_a_new_run_never_writes_into_a_folder_that_holds_files(tmp_path, capsys):
    """`--out` of a finished run (or of one's photos) was trained over: the other run's
    checkpoint and config replaced, its resume broken."""
    used = tmp_path / "run1"
    used.mkdir()
    (used / "config.yaml").write_text("model: resnet20\n")
    assert main(["detect", "train", "--out", str(used), "--device", "cpu"]) == 2
    assert "run1 is not empty; pass a new folder" in _error_line(capsys)
    assert [p.name for p in used.iterdir()] == ["config.yaml"]
    assert (used / "config.yaml").read_text() == "model: resnet20\n"


def test_predict_keeps_every_picture_when_two_inputs_share_a_name(checkpoint, tmp_path, capsys):
    image = torch.zeros(1, 64, 64, dtype=torch.uint8)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = save_png(image, tmp_path / "a" / "x.png")
    second = save_png(image + 50, tmp_path / "b" / "x.png")
    code = main(["detect", "predict", str(checkpoint), str(first), str(second), "--device", "cpu",
                 "--out", str(tmp_path / "out"), "--json"])  # fmt: skip
    assert code == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in records] == ["x", "x"]
    assert [Path(r["output"]).name for r in records] == ["x_boxes.png", "x-2_boxes.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x-2_boxes.png", "x_boxes.png"]


def test_predict_draws_boxes_on_a_png(checkpoint, tmp_path, capsys) -> None:
    from PIL import Image

    image = torch.zeros(1, 64, 64, dtype=torch.uint8)
    image[0, 10:40, 20:35] = 220
    source = save_png(image, tmp_path / "input.png")
    code = main(["detect", "predict", str(checkpoint), str(source), "--device", "cpu",
                 "--score-threshold", "0", "--scale", "2", "--out", str(tmp_path / "out"),
                 "--json"])  # fmt: skip
    assert code == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in records] == ["input"]
    with Image.open(records[0]["output"]) as drawn:
        assert drawn.size == (128, 128) and drawn.mode == "RGB"
    for detection in records[0]["detections"]:
        assert detection["label"] in CLASSES and 0.0 <= detection["score"] <= 1.0
        assert all(0.0 <= v <= 64.0 for v in detection["box"])


def test_draw_detections_outlines_the_box_in_the_class_color() -> None:
    from resnet.detection import draw_detections

    image = torch.zeros(1, 16, 16, dtype=torch.uint8)
    drawn = draw_detections(image, torch.tensor([[2.0, 3.0, 10.0, 12.0]]), torch.tensor([2]),
                            torch.tensor([0.9]), CLASSES, scale=2)  # fmt: skip
    assert drawn.shape == (3, 32, 32) and drawn.dtype == torch.uint8
    # Trouser is class 2: tab10's orange (255, 127, 14) on the box's edges, enlarged twice
    # (PIL draws the end pixel too: bottom edge at y = 24, left edge at x = 4).
    assert drawn[:, 24, 10].tolist() == [255, 127, 14]
    assert drawn[:, 22, 4].tolist() == [255, 127, 14]
    assert drawn[:, 30, 30].tolist() == [0, 0, 0]  # outside the box nothing changes
    empty = draw_detections(image, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), None,
                            CLASSES, scale=2)  # fmt: skip
    assert torch.equal(empty, torch.zeros(3, 32, 32, dtype=torch.uint8))

"""train_detector, evaluate_detector and mean_average_precision (torchmetrics' COCO mAP)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from resnet.detection import (
    build_canvases,
    evaluate_detector,
    load_detector,
    mean_average_precision,
    train_detector,
)
from resnet.errors import ConfigError, NonFiniteLossError


def _box(*values: float) -> torch.Tensor:
    return torch.tensor([values], dtype=torch.float32)


def test_map_is_one_when_predictions_equal_the_ground_truth() -> None:
    targets = [
        {"boxes": torch.tensor([[2.0, 3.0, 20.0, 30.0], [30.0, 30.0, 60.0, 50.0]]),
         "labels": torch.tensor([1, 4])},
        {"boxes": _box(10, 10, 40, 25), "labels": torch.tensor([2])},
    ]  # fmt: skip
    predictions = [{**t, "scores": torch.ones(len(t["labels"]))} for t in targets]
    result = mean_average_precision(predictions, targets)
    assert result["map"] == pytest.approx(1.0) and result["map_50"] == pytest.approx(1.0)


def test_map_known_partial_answers() -> None:
    # IoU 0.72 matches at thresholds 0.50..0.70 (5 of 10): AP@[.5:.95] = 0.5, AP@0.5 = 1.
    target = {"boxes": _box(0, 0, 10, 10), "labels": torch.tensor([1])}
    shifted = {"boxes": _box(0, 0, 10, 7.2), "labels": torch.tensor([1]), "scores": torch.ones(1)}
    result = mean_average_precision([shifted], [target])
    assert result["map"] == pytest.approx(0.5)
    assert result["map_50"] == pytest.approx(1.0) and result["map_75"] == pytest.approx(0.0)
    # One of two objects found: precision 1 up to recall 0.5, so 51 of COCO's 101 recall points.
    both = {"boxes": torch.cat([_box(0, 0, 10, 10), _box(20, 20, 30, 30)]),
            "labels": torch.tensor([1, 1])}  # fmt: skip
    half = {"boxes": _box(0, 0, 10, 10), "labels": torch.tensor([1]), "scores": torch.ones(1)}
    result = mean_average_precision([half], [both], class_names=["thing"])
    assert result["map_50"] == pytest.approx(51 / 101, abs=1e-4)
    assert result["per_class"] == {"thing": pytest.approx(51 / 101, abs=1e-4)}
    # Classes without ground truth have no AP (COCO's -1, or nothing at all): None, every class
    # listed. "ghost" is predicted but absent, "unseen" neither predicted nor present.
    ghost = {"boxes": _box(40, 40, 50, 50), "labels": torch.tensor([2]), "scores": torch.ones(1)}
    result = mean_average_precision([half, ghost], [both, {"boxes": _box(0, 0, 1, 1)[:0],
                                    "labels": torch.tensor([], dtype=torch.long)}],
                                    class_names=["thing", "ghost", "unseen"])  # fmt: skip
    assert result["per_class"] == {
        "thing": pytest.approx(51 / 101, abs=1e-4), "ghost": None, "unseen": None
    }  # fmt: skip
    assert result["map"] == pytest.approx(51 / 101, abs=1e-4)  # the mean skips both


class _Oracle(nn.Module):
    """Answers each batch with the ground truth of the canvases, in evaluation order."""

    def __init__(self, canvases) -> None:
        super().__init__()
        self.canvases, self.seen = canvases, 0

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        first, self.seen = self.seen, self.seen + len(images)
        for offset, image in enumerate(images):  # the oracle is only right for the right images
            assert torch.equal((image * 255).round().byte(), self.canvases.images[first + offset])
        targets = self.canvases.targets(range(first, first + len(images)))
        return [{**t, "scores": torch.ones(len(t["labels"]))} for t in targets]


def test_evaluate_detector_scores_a_perfect_detector_one() -> None:
    items = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    for index in range(3):
        items[index, 0, 4 + index : 20, 6 : 22 - index] = 100 + 50 * index
    canvases = build_canvases(items, torch.tensor([0, 1, 2]), 10, class_names=["a", "b", "c"],
                              canvas_size=64, item_sizes=(12, 28), seed=3)  # fmt: skip
    result = evaluate_detector(_Oracle(canvases), canvases=canvases, batch_size=4, device="cpu")
    assert result["map"] == pytest.approx(1.0) and result["map_50"] == pytest.approx(1.0)
    assert result["images"] == 10 and result["objects"] == sum(map(len, canvases.labels))


def test_tiny_training_run_saves_a_checkpoint_that_evaluates(tmp_path) -> None:
    lines: list[str] = []
    summary = train_detector(
        epochs=1, train_images=6, batch_size=2, max_steps=2, out=tmp_path / "run",
        device="cpu", seed=1, log=lines.append,
    )  # fmt: skip
    assert summary.steps == 2 and summary.epochs == 1
    assert torch.isfinite(torch.tensor(summary.final_loss)) and summary.final_loss > 0
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()  # the engine's log
    assert rows[0].startswith("epoch,step,loss,loss_classifier") and rows[1].startswith("1,2,")
    assert any("training Faster R-CNN" in line for line in lines)
    saved = json.loads((tmp_path / "run" / "detector.json").read_text())
    assert saved["backbone"] == "resnet18" and saved["canvas_size"] == 64
    assert saved["class_names"][1] == "Trouser" and saved["training"]["steps"] == 2

    model, config = load_detector(tmp_path / "run")
    assert config.num_classes == 11 and config.item_sizes == (12, 28)
    result = evaluate_detector(tmp_path / "run", num_images=4, device="cpu")
    assert 0.0 <= result["map"] <= result["map_50"] <= 1.0
    assert set(result["per_class"]) <= set(config.class_names)


def test_training_rejects_bad_options(tmp_path) -> None:
    with pytest.raises(ConfigError):
        train_detector(epochs=0, out=tmp_path)
    with pytest.raises(ConfigError):
        train_detector(lr=-1.0, out=tmp_path)


def test_detector_resumes_bitwise_through_the_engine(tmp_path, monkeypatch) -> None:
    """The detector trains through the one loop: stopped after its first epoch's resume point
    (Ctrl-C while the detector file is written), it continues bitwise."""
    from safetensors.torch import load_file

    import resnet.detection.train as detection_train
    from resnet.run import RunInterrupted

    options = {"epochs": 2, "train_images": 4, "batch_size": 2, "device": "cpu", "seed": 1,
               "log": lambda _line: None}  # fmt: skip
    train_detector(**options, out=tmp_path / "whole")

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(detection_train, "save_detector", interrupt)
    with pytest.raises(RunInterrupted, match="last checkpoint in .*half is kept"):
        train_detector(**options, out=tmp_path / "half")
    monkeypatch.undo()
    summary = train_detector(**options, resume=tmp_path / "half")
    assert summary.steps == 4 and summary.epochs == 2
    whole = load_file(str(tmp_path / "whole" / "detector.safetensors"))
    resumed = load_file(str(tmp_path / "half" / "detector.safetensors"))
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    settings = (tmp_path / "whole" / "config.yaml").read_bytes()
    with pytest.raises(ConfigError, match="has trained all it was planned to .epochs 2.: epoch 2"):
        train_detector(**{**options, "lr": 0.5}, resume=tmp_path / "whole")
    with pytest.raises(ConfigError, match="seed is 1 there, 2 given; drop --seed"):
        train_detector(**{**options, "epochs": 3, "seed": 2}, resume=tmp_path / "whole")
    assert (tmp_path / "whole" / "config.yaml").read_bytes() == settings


def test_detector_nan_stops_with_the_engine_error(tmp_path) -> None:
    with pytest.raises(NonFiniteLossError, match="NaN/inf"):
        train_detector(epochs=1, train_images=4, batch_size=2, lr=1e12, device="cpu",
                       out=tmp_path / "nan", log=lambda _line: None)  # fmt: skip
    assert not (tmp_path / "nan" / "detector.safetensors").exists()

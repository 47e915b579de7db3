"""``resnet detect train --annotations instances_train.json``: a detector trained on one's own
photos in COCO's format (here Fashion-MNIST items pasted on photos written as PNG files, with
their boxes), from scratch or fine-tuned from a torchvision Faster R-CNN file; then scored and
drawn like any run."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from torchvision.models import resnet18
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import FrozenBatchNorm2d

from resnet.cli import main
from resnet.detection import build_canvases, load_detector, train_detector
from resnet.detection.canvas import load_items
from resnet.detection.coco import evaluate_on_coco
from resnet.detection.photos import photo_batches, training_photos
from resnet.errors import ConfigError

NAMES = {5: "Sandal", 2: "Trouser", 9: "Bag"}  # category id -> name, ids out of order


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Eight 96-pixel RGB photos of Fashion-MNIST test items in COCO's layout."""
    root = tmp_path_factory.mktemp("photos")
    items, names = load_items("test")
    wanted = [names.index(n) for n in NAMES.values()]
    keep = torch.isin(items.labels, torch.tensor(wanted))
    canvases = build_canvases(items.images[keep], items.labels[keep], 8, class_names=names,
                              canvas_size=96, channels=3, item_sizes=(24, 40), seed=3)  # fmt: skip
    (root / "train").mkdir()
    (root / "annotations").mkdir()
    id_of = {name: category for category, name in NAMES.items()}
    images, annotations = [], []
    for index in range(len(canvases)):
        name = f"{index:04d}.png"
        Image.fromarray(canvases.images[index].permute(1, 2, 0).numpy()).save(root / "train" / name)
        images.append({"id": index, "file_name": name, "width": 96, "height": 96})
        for box, label in zip(canvases.boxes[index].tolist(), canvases.labels[index].tolist()):
            x0, y0, x1, y1 = box
            annotations.append({"id": len(annotations), "image_id": index, "iscrowd": 0,
                                "category_id": id_of[names[label - 1]],
                                "bbox": [x0, y0, x1 - x0, y1 - y0]})  # fmt: skip
    categories = [{"id": i, "name": n} for i, n in NAMES.items()]
    data = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / "instances_train.json").write_text(json.dumps(data))
    return root / "annotations" / "instances_train.json"


def test_the_cli_trains_on_photos_and_the_run_is_scored_on_them(photos, tmp_path, capsys):
    command = ["detect", "train", "--annotations", str(photos), "--max-steps", "2",
               "--canvas-size", "96", "--batch-size", "2", "--out", str(tmp_path / "run"),
               "--device", "cpu"]  # fmt: skip
    assert main(command) == 0
    assert "photos of instances_train.json" in capsys.readouterr().out
    _, config = load_detector(tmp_path / "run")
    assert config.class_names == ["Trouser", "Sandal", "Bag"]  # by category id
    assert (config.trained_on, config.in_chans, config.canvas_size) == ("images", 3, 96)
    assert (config.box_batch_size_per_image, config.representation_size) == (128, 1024)
    result = evaluate_on_coco(tmp_path / "run", photos, photos.parent.parent / "train",
                              device="cpu", log=lambda line: None)  # fmt: skip
    assert result["images"] == 8 and 0.0 <= result["map"] <= 1.0
    assert main([*command[:-4], "--out", str(tmp_path / "r2"), "--image-dir", "nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet: error: ") and "\n" not in err and "not there" in err


def test_an_epoch_is_every_photo_once_mirrored_with_its_boxes(photos):
    data = training_photos(photos, photos.parent.parent / "train")
    first = list(photo_batches(data, 3, seed=0, epoch=1, device=torch.device("cpu")))
    again = list(photo_batches(data, 3, seed=0, epoch=1, device=torch.device("cpu")))
    assert sum(len(images) for images, _ in first) == 8
    for (images, _), (same, _) in zip(first, again):  # a resumed epoch sees the same
        assert all(torch.equal(a, b) for a, b in zip(images, same))
    boxes = [box for _, targets in first for target in targets for box in target["boxes"]]
    total = sum(len(t["boxes"]) for t in data.targets)
    assert len(boxes) == total
    mirrored_somewhere = False
    for images, targets in first:  # each box still frames its item: pixels inside, dark outside
        for image, target in zip(images, targets):
            for x0, y0, x1, y1 in target["boxes"].round().int().tolist():
                assert image[:, y0:y1, x0:x1].sum() > 0
            mirrored_somewhere |= not any(torch.equal(image, d) for d in _decoded(data))
    assert mirrored_somewhere


def _decoded(data):
    from resnet.data.decode import read_image_tensor

    return [read_image_tensor(path, 3).float() / 255 for path in data.paths]


def _torchvision_file(path, num_classes: int = 91):
    torch.manual_seed(0)
    backbone = _resnet_fpn_extractor(resnet18(norm_layer=FrozenBatchNorm2d), 3)
    detector = FasterRCNN(backbone, num_classes=num_classes)
    torch.save(detector.state_dict(), path)
    return detector


def test_fine_tuning_a_torchvision_detector_keeps_all_but_its_classifier(photos, tmp_path):
    source = _torchvision_file(tmp_path / "fasterrcnn_resnet18_fpn.pth")
    train_detector(annotations=photos, weights=tmp_path / "fasterrcnn_resnet18_fpn.pth",
                   epochs=1, batch_size=4, max_steps=1, canvas_size=96, lr=1e-9,
                   trainable_layers=3, out=tmp_path / "run", log=lambda line: None)  # fmt: skip
    tuned, config = load_detector(tmp_path / "run")
    assert config.backbone == "resnet18" and config.norm_layer == "frozen_batch"
    assert tuned.roi_heads.box_predictor.cls_score.out_features == 4  # 3 classes + background
    frozen = source.backbone.body.conv1.weight  # conv1 is not among the 3 trainable stages
    assert torch.equal(tuned.backbone.body.conv1.weight, frozen)
    assert torch.allclose(tuned.rpn.head.cls_logits.weight, source.rpn.head.cls_logits.weight)


def test_a_detector_file_on_another_backbone_is_refused(photos, tmp_path):
    _torchvision_file(tmp_path / "fasterrcnn_resnet18_fpn.pth")
    with pytest.raises(ConfigError, match="a detector on resnet18, not resnet50; drop --model"):
        train_detector(annotations=photos, weights=tmp_path / "fasterrcnn_resnet18_fpn.pth",
                       model="resnet50", out=tmp_path / "run", log=lambda line: None)  # fmt: skip
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_a_resumed_photo_run_ends_as_the_uninterrupted_one(photos, tmp_path, monkeypatch):
    """Stopped at its first epoch's checkpoint, a run on photos continues bitwise: the same
    photo order and mirrors (drawn from seed and epoch), the same schedule."""
    import resnet.detection.train as detection_train
    from resnet.run import RunInterrupted

    options = {
        "annotations": photos,
        "epochs": 2,
        "batch_size": 8,
        "canvas_size": 64,
        "log": lambda _: None,
    }  # fmt: skip (one step an epoch)
    train_detector(**options, out=tmp_path / "whole")

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(detection_train, "save_detector", interrupt)
    with pytest.raises(RunInterrupted):
        train_detector(**options, out=tmp_path / "half")
    monkeypatch.undo()
    assert train_detector(**options, resume=tmp_path / "half").steps == 2
    whole, _ = load_detector(tmp_path / "whole")
    resumed, _ = load_detector(tmp_path / "half")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name

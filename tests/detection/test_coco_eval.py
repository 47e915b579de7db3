"""``resnet detect eval --annotations instances_X.json``: a detector scored on photos annotated
in COCO's format gives pycocotools' own COCOeval numbers (crowd regions, the annotations' areas,
category ids matched by name), and a broken file is one line naming what is wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.cli import main
from resnet.data.decode import read_image_tensor
from resnet.detection.coco import evaluate_on_coco, read_coco_annotations
from resnet.detection.detector import DetectorConfig, build_detector, load_detector, save_detector
from resnet.errors import DataError

CLASSES = ["shirt", "bag", "shoe"]
CATEGORY_IDS = {"bag": 3, "shoe": 7, "shirt": 12}  # COCO's ids have gaps, in another order


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """An untrained detector, six photos in COCO's layout, and annotations made from some of
    the detector's own boxes (so that its mAP is neither 0 nor 1), with a crowd region."""
    root = tmp_path_factory.mktemp("coco")
    torch.manual_seed(0)
    config = DetectorConfig(class_names=CLASSES, canvas_size=64)
    save_detector(build_detector(config), config, root / "run")
    model, _ = load_detector(root / "run")
    (root / "val2017").mkdir()
    (root / "annotations").mkdir()
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for index in range(6):
        size = (64 + 8 * index, 80)
        pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        name = f"{index:012d}.jpg"
        Image.fromarray(pixels).save(root / "val2017" / name)
        images.append({"id": 100 + index, "file_name": name, "width": size[0], "height": size[1]})
        with torch.no_grad():
            found = model.eval()([read_image_tensor(root / "val2017" / name, 1).float() / 255])[0]
        for rank, (box, label) in enumerate(zip(found["boxes"][::3], found["labels"][::3])):
            x0, y0, x1, y1 = (float(v) + 1.5 for v in box)  # shifted: IoUs below 1
            annotations.append({
                "id": len(annotations) + 1, "image_id": 100 + index,
                "category_id": CATEGORY_IDS[CLASSES[int(label) - 1]],
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0) * 0.7,
                "iscrowd": int(rank == 0 and index == 2),
            })  # fmt: skip
    categories = [{"id": i, "name": n, "supercategory": "item"} for n, i in CATEGORY_IDS.items()]
    data = {"info": {}, "images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return root, model


def _pycocotools_stats(root, model) -> list[float]:
    """COCOeval's own summary of the detector's predictions on the same files."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = COCO(str(root / "annotations" / "instances_val2017.json"))
    results = []
    for image in truth.dataset["images"]:
        x = read_image_tensor(root / "val2017" / image["file_name"], 1).float() / 255
        with torch.no_grad():
            found = model.eval()([x])[0]
        for box, label, score in zip(found["boxes"], found["labels"], found["scores"]):
            x0, y0, x1, y1 = box.tolist()
            category = CATEGORY_IDS[CLASSES[int(label) - 1]]
            results.append({"image_id": image["id"], "category_id": category,
                            "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})  # fmt: skip
    scoring = COCOeval(truth, truth.loadRes(results), "bbox")
    scoring.evaluate()
    scoring.accumulate()
    scoring.summarize()
    return list(scoring.stats)


def test_the_scores_are_pycocotools_own(coco):
    root, model = coco
    result = evaluate_on_coco(
        root / "run", root / "annotations" / "instances_val2017.json", root / "val2017",
        device="cpu", log=lambda line: None,
    )  # fmt: skip
    stats = _pycocotools_stats(root, model)
    assert 0.05 < result["map"] < 0.95
    got = [result[k] for k in ("map", "map_50", "map_75", "map_small", "map_medium", "map_large")]
    assert got == pytest.approx(stats[:6], abs=1e-6)
    assert result["mar_100"] == pytest.approx(stats[8], abs=1e-6)
    assert result["images"] == 6


def test_the_cli_finds_the_images_by_cocos_layout(coco, capsys):
    root, _ = coco
    annotations = str(root / "annotations" / "instances_val2017.json")
    command = ["detect", "eval", str(root / "run"), "--annotations", annotations]
    assert main([*command, "--images", "2", "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 2


def test_a_file_named_otherwise_needs_its_image_folder(coco, tmp_path, capsys):
    root, _ = coco
    renamed = tmp_path / "labels.json"
    renamed.write_text((root / "annotations" / "instances_val2017.json").read_text())
    assert main(["detect", "eval", str(root / "run"), "--annotations", str(renamed)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet: error: ") and "\n" not in err and "--image-dir" in err
    missing = str(tmp_path / "labels2.json")  # was refused for its name, not its absence
    assert main(["detect", "eval", str(root / "run"), "--annotations", missing]) == 2
    assert f"{missing}: no such annotation file; check the path" in capsys.readouterr().err


def _broken(root, tmp_path, change) -> str:
    data = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    change(data)
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["categories"].append({"id": 90, "name": "toaster"}), "does not know: toaster"),
        (lambda d: d["images"][0].update(file_name="gone.jpg"), "gone.jpg: an image"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "not \\[x, y, width, height\\]"),
        (lambda d: d["annotations"][0].update(category_id=55), "category 55, which"),
        (lambda d: d.pop("categories"), "not in COCO's format"),
        (lambda d: d["images"][1].pop("id"), "without 'id'"),
        (lambda d: d["annotations"][0].update(image_id=[1]), "image_id \\[1\\] is not a number"),
        # A box that could never be found, an image nobody lists, no images, a name twice:
        # each counted (or dropped) silently before.
        (lambda d: d["annotations"][0].update(bbox=[1, 2, -5, 3]), "is not a box"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, float("nan"), 3]), "is not a box"),
        (lambda d: d["annotations"][0].update(bbox=[1e9, 1e9, 5, 5]), "outside its image"),
        (lambda d: d["annotations"][0].update(bbox=[-20, 5, 10, 5]), "outside its image"),
        (lambda d: d["annotations"][0].update(image_id=999), "image 999, which 'images' lacks"),
        (lambda d: d.update(images=[], annotations=[]), "lists no images"),
        (lambda d: d["categories"][1].update(name="shirt"), "categories named twice: shirt"),
    ],
)
def test_a_broken_annotation_file_is_refused_naming_the_fault(coco, tmp_path, change, message):
    root, _ = coco
    with pytest.raises(DataError, match=message):
        read_coco_annotations(_broken(root, tmp_path, change), root / "val2017", CLASSES)


def test_a_photo_its_exif_turns_is_refused_where_the_boxes_were_drawn_on_it_as_stored(coco):
    root, _ = coco
    stored = Image.open(root / "val2017" / "000000000002.jpg")  # 80x80: make it 80 wide, 64 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees": a phone held upright
    turned = root / "val2017" / "turned.jpg"
    stored.crop((0, 0, 80, 64)).save(turned, exif=exif)
    data = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    data["images"] = [{"id": 1, "file_name": "turned.jpg", "width": 80, "height": 64}]
    data["annotations"] = [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 30, 40]}]
    path = root / "annotations" / "turned.json"
    path.write_text(json.dumps(data))
    photos = read_coco_annotations(path, root / "val2017", CLASSES)
    with pytest.raises(DataError, match="64x80 upright \\(its EXIF turns it a quarter\\).*80x64"):
        photos.image(0, 3)


def test_canvases_written_in_cocos_layout_read_back_as_they_were(tmp_path, capsys):
    from pycocotools.coco import COCO

    from resnet.detection import fashion_mnist_canvases
    from resnet.detection.coco import coco_image_dir, write_coco

    canvases = fashion_mnist_canvases("test", 3, seed=1, channels=3, canvas_size=64,
                                      item_sizes=(12, 28))  # fmt: skip
    written = write_coco(canvases, tmp_path, "val")
    assert written == tmp_path / "annotations" / "instances_val.json"
    assert coco_image_dir(written) == tmp_path / "val"
    assert len(COCO(str(written)).getAnnIds()) == sum(len(b) for b in canvases.boxes)
    photos = read_coco_annotations(written, tmp_path / "val", canvases.class_names)
    for index, target in enumerate(photos.targets):
        assert torch.equal(photos.image(index, 3), canvases.images[index])  # PNG: lossless
        torch.testing.assert_close(target["boxes"], canvases.boxes[index], rtol=0, atol=0)
        assert torch.equal(target["labels"], canvases.labels[index])
    command = ["detect", "canvases", "--out", str(tmp_path), "--images", "2"]
    assert main([*command, "--split", "train"]) == 0
    assert "Fashion-MNIST train items" in capsys.readouterr().out
    assert main([*command, "--split", "../x"]) == 2
    assert "split must be a word" in capsys.readouterr().err
    before = sorted(p.name for p in (tmp_path / "val").iterdir())
    assert main([*command, "--split", "val"]) == 2  # 2 over 3 left a stale image beside them
    assert f"{tmp_path / 'val'} already holds a val split" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == before
    assert len(json.loads(written.read_text())["images"]) == 3

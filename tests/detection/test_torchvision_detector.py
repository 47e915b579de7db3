"""torchvision's Faster R-CNN files (the COCO-trained ``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth``
and detectors fine-tuned with torchvision) load into our detector, which then gives torchvision's
detections; its other detectors are refused by name, and so are canvases for a detector of photos.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from PIL import Image
from torchvision.models import resnet18
from torchvision.models.detection import FasterRCNN, RetinaNet, fasterrcnn_resnet50_fpn
from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights as CocoWeights
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from resnet import create_model, load_weights
from resnet.cli import main
from resnet.detection import evaluate_detector, load_detector, predict_detections
from resnet.detection.torchvision_files import COCO_CATEGORIES
from resnet.errors import ConfigError, WeightsError


def _torchvision_detector(num_classes: int, architecture: str = "faster_rcnn") -> torch.nn.Module:
    """torchvision's Faster R-CNN (or RetinaNet) on a resnet18 FPN with frozen norms whose
    statistics look trained (a wrong BN shows), as torchvision's detection references fine-tune
    one."""
    torch.manual_seed(0)
    body = resnet18(norm_layer=FrozenBatchNorm2d)
    for norm in (m for m in body.modules() if isinstance(m, FrozenBatchNorm2d)):
        norm.running_mean.uniform_(-0.1, 0.1)
        norm.running_var.uniform_(0.5, 1.5)
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.1, 0.1)
    if architecture == "retinanet":  # C3-C5, P6 and P7 from P5: retinanet_resnet50_fpn (v1)
        backbone = _resnet_fpn_extractor(body, 3, [2, 3, 4], LastLevelP6P7(256, 256))
        return RetinaNet(backbone, num_classes=num_classes).eval()
    return FasterRCNN(_resnet_fpn_extractor(body, 3), num_classes=num_classes).eval()


@pytest.fixture(scope="module", params=["faster_rcnn", "retinanet"])
def fine_tuned(request, tmp_path_factory):
    """A detector of 4 classes, saved as torchvision's references/detection/train.py saves it."""
    reference = _torchvision_detector(5, request.param)
    path = tmp_path_factory.mktemp("tv") / "checkpoint.pth"
    arguments = argparse.Namespace(model="fasterrcnn_resnet50_fpn", epochs=26, lr=0.02)
    torch.save({"model": reference.state_dict(), "epoch": 25, "args": arguments}, path)
    return path, reference


def test_a_fine_tuned_torchvision_detector_gives_torchvisions_detections(fine_tuned):
    path, reference = fine_tuned
    ours, config = load_detector(path)
    assert config.architecture == type(reference).__name__.lower().replace(
        "fasterrcnn", "faster_rcnn"
    )
    assert config.backbone == "resnet18"
    assert config.class_names == ["class 1", "class 2", "class 3", "class 4"]
    assert (config.canvas_size, config.max_size, config.norm_layer) == (800, 1333, "frozen_batch")
    for model in (reference, ours.eval()):  # every box scored, at a size a test affords
        scored = model.roi_heads if hasattr(model, "roi_heads") else model
        scored.score_thresh = 0.0
        model.transform.min_size, model.transform.max_size = (160,), 240
    image = torch.rand(3, 120, 180)
    with torch.no_grad():
        expected, got = reference([image])[0], ours([image])[0]
    assert len(expected["boxes"]) > 10
    for key in ("boxes", "scores", "labels"):
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    title = "Faster R-CNN" if config.architecture == "faster_rcnn" else "RetinaNet"
    report = load_weights(create_model("resnet18"), path).describe()  # its ResNet, pretrained
    assert f"torchvision's {title}'s ResNet (backbone.body)" in report


def test_the_coco_file_is_resnet50_with_cocos_names_in_any_key_version(tmp_path):
    with torch.device("meta"):
        shapes = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
    state = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in shapes.items()}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    # The 2019 file names the RPN's conv as torchvision did before its Conv2dNormActivation.
    state = {k.replace("rpn.head.conv.0.0.", "rpn.head.conv."): v for k, v in state.items()}
    torch.save(state, tmp_path / "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth")
    model, config = load_detector(tmp_path / "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth")
    assert config.backbone == "resnet50" and config.trained_on == "images"
    assert list(COCO_CATEGORIES) == CocoWeights.COCO_V1.meta["categories"][1:]
    assert config.class_names == list(COCO_CATEGORIES)
    assert model.rpn.head.conv[0][0].weight.shape == (256, 256, 3, 3)
    # Its ResNet alone is a pretrained classifier backbone: fine-tuning starts from it.
    report = load_weights(
        create_model("resnet50"), tmp_path / "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
    )
    assert "torchvision's Faster R-CNN's ResNet (backbone.body)" in report.describe()
    assert "fc is new" in report.describe()


@pytest.mark.parametrize(
    ("key", "what"),
    [
        ("roi_heads.mask_head.mask_fcn1.0.weight", "Mask R-CNN"),
        ("roi_heads.keypoint_head.0.weight", "Keypoint R-CNN"),
        ("backbone.fpn.inner_blocks.0.1.weight", "Faster R-CNN v2"),
        ("roi_heads.box_head.0.0.weight", "Faster R-CNN v2"),
    ],
)
def test_torchvisions_other_detectors_are_refused_by_name(key, what, tmp_path):
    state = _torchvision_detector(3).state_dict()
    torch.save({**state, key: torch.zeros(4)}, tmp_path / "detector.pth")
    with pytest.raises(
        WeightsError, match=f"torchvision's {what}.*only Faster R-CNN and RetinaNet"
    ):
        load_detector(tmp_path / "detector.pth")


def test_retinanet_v2_is_refused_by_its_p6_and_its_head(tmp_path):
    state = _torchvision_detector(3, "retinanet").state_dict()
    torch.save(
        {**state, "head.classification_head.conv.0.1.weight": torch.zeros(4)}, tmp_path / "a.pth"
    )
    with pytest.raises(WeightsError, match="RetinaNet v2"):
        load_detector(tmp_path / "a.pth")
    state["backbone.fpn.extra_blocks.p6.weight"] = torch.zeros(256, 512, 3, 3)  # from C5
    torch.save(state, tmp_path / "b.pth")
    with pytest.raises(WeightsError, match="P6 is not made from P5"):
        load_detector(tmp_path / "b.pth")


def test_a_classifier_file_is_not_a_detector(tmp_path):
    torch.save(resnet18().state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(WeightsError, match="neither a detector run folder nor torchvision's"):
        load_detector(tmp_path / "resnet18.pth")


def test_canvases_are_refused_for_a_detector_of_photos(fine_tuned):
    path, _ = fine_tuned
    with pytest.raises(ConfigError, match="trained on images of its own classes"):
        evaluate_detector(path, num_images=2, device="cpu")
    with pytest.raises(ConfigError, match="predict draws without images"):
        predict_detections(path, device="cpu")


@pytest.mark.parametrize("fine_tuned", ["faster_rcnn"], indirect=True)  # one is enough here
def test_the_cli_draws_its_boxes_on_a_photo_and_refuses_eval_in_one_line(
    fine_tuned, tmp_path, capsys
):
    path, _ = fine_tuned
    photo = tmp_path / "street.jpg"
    Image.fromarray((torch.rand(90, 120, 3) * 255).byte().numpy()).save(photo)
    out = tmp_path / "drawn"
    command = ["detect", "predict", str(path), str(photo), "--out", str(out)]
    assert main([*command, "--score-threshold", "0", "--json", "--device", "cpu"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["output"] == str(out / "street_boxes.png")
    assert Image.open(record["output"]).size == (360, 270)  # small photos are enlarged 3x
    assert main(["detect", "eval", str(path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet: error: ") and "\n" not in err and "images" in err

"""Hugging Face transformers' ResNet (the ``microsoft/resnet-*`` checkpoints) loads into ours.

A ``save_pretrained`` folder, written by transformers itself with random weights and random BN
statistics, loads with ``load_weights`` (the folder or its weight file) and gives transformers'
logits; a config whose tensors mean another network is refused.
"""

import json

import pytest
import torch
import transformers  # a dev dependency: the parity tests never skip
from parity_helpers import randomise_norms

from resnet import create_model, load_weights
from resnet.errors import WeightsError

pytestmark = pytest.mark.usefixtures("one_thread")

# (our model, transformers' ResNetConfig of the microsoft/resnet-* checkpoint of that depth)
CONFIGS = {
    "resnet18": {
        "depths": [2, 2, 2, 2],
        "layer_type": "basic",
        "hidden_sizes": [64, 128, 256, 512],
    },
    "resnet50": {
        "depths": [3, 4, 6, 3],
        "layer_type": "bottleneck",
        "hidden_sizes": [256, 512, 1024, 2048],
    },
}


def _saved_transformers_resnet(folder, name, num_labels=10, **options):
    torch.manual_seed(0)
    config = transformers.ResNetConfig(**CONFIGS[name], num_labels=num_labels, **options)
    model = transformers.ResNetForImageClassification(config).eval()
    randomise_norms(model)
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("given", ["folder", "weight-file"])
def test_a_save_pretrained_resnet_gives_transformers_logits(tmp_path, name, given):
    theirs = _saved_transformers_resnet(tmp_path / "hub", name)
    source = tmp_path / "hub" if given == "folder" else tmp_path / "hub" / "model.safetensors"
    ours = create_model(name, num_classes=10).eval()
    report = load_weights(ours, source)
    assert not (report.dropped_classifier or report.backbone_only or report.skipped)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = theirs(pixel_values=x).logits
        torch.testing.assert_close(ours(x), expected, rtol=1e-4, atol=1e-4)


def test_the_backbone_alone_and_another_class_count_load_too(tmp_path):
    theirs = _saved_transformers_resnet(tmp_path / "hub", "resnet18", num_labels=1000)
    ours = create_model("resnet18", num_classes=5).eval()
    assert load_weights(ours, tmp_path / "hub").dropped_classifier  # 1000 ImageNet classes
    theirs.resnet.save_pretrained(tmp_path / "base")  # ResNetModel: no "resnet." prefix
    backbone = create_model("resnet18", features_only=True).eval()
    load_weights(backbone, tmp_path / "base")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x)[-1], theirs.resnet(x).last_hidden_state)


@pytest.mark.parametrize(
    "option, value", [("downsample_in_first_stage", True), ("hidden_act", "gelu")]
)
def test_a_config_for_another_network_is_refused(tmp_path, option, value):
    """Same tensor names and shapes, other strides or activation: loading would be silently
    wrong, so the config.json beside the weights is read and this is refused."""
    _saved_transformers_resnet(tmp_path / "hub", "resnet50", **{option: value})
    assert json.loads((tmp_path / "hub" / "config.json").read_text())[option] == value
    for source in (tmp_path / "hub", tmp_path / "hub" / "model.safetensors"):
        with pytest.raises(WeightsError, match=f"config.json sets {option}="):
            load_weights(create_model("resnet50", num_classes=10), source)


def test_the_papers_v1_loads_into_stride_in_1x1_and_only_there(tmp_path):
    """``downsample_in_bottleneck``: the stride on the first 1x1 conv, as in the paper's Caffe
    models; the same tensors in torchvision's v1.5 would compute another network."""
    theirs = _saved_transformers_resnet(tmp_path / "v1", "resnet50", downsample_in_bottleneck=True)
    ours = create_model("resnet50", num_classes=10, stride_in_1x1=True).eval()
    load_weights(ours, tmp_path / "v1")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(pixel_values=x).logits, rtol=1e-4, atol=1e-4)
    with pytest.raises(
        WeightsError, match="the paper's v1 .*; its tensors assume stride_in_1x1=True"
    ):
        load_weights(create_model("resnet50", num_classes=10), tmp_path / "v1")
    _saved_transformers_resnet(tmp_path / "v15", "resnet50")
    with pytest.raises(WeightsError, match="stride_in_1x1=False and resnet50 has True"):
        load_weights(ours, tmp_path / "v15" / "model.safetensors")


def test_a_folder_without_weights_is_one_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="without model.safetensors or pytorch_model.bin"):
        load_weights(create_model("resnet18"), tmp_path)


def test_resnet_train_starts_from_a_save_pretrained_folder(tmp_path, write_images):
    """``--pretrained FOLDER``: a hub download is a weight source, not a run folder."""
    from resnet.cli import main
    from resnet.engine.checkpoint import load_checkpoint

    theirs = _saved_transformers_resnet(tmp_path / "hub", "resnet18", num_labels=1000)
    write_images(tmp_path / "images", size=(32, 32))
    args = ["train", "--model", "resnet18", "--dataset", str(tmp_path / "images"), "--pretrained",
            str(tmp_path / "hub"), "--max-steps", "1", "--lr", "1e-9", "--runs-dir",
            str(tmp_path / "runs"), "--name", "hf", "--no-progress", "--set", "amp=off",
            "--set", "val_fraction=0.25", "--set", "log_tensorboard=false"]  # fmt: skip
    assert main(args) == 0
    model, _ = load_checkpoint(tmp_path / "runs" / "hf")
    stem = theirs.resnet.embedder.embedder.convolution.weight
    torch.testing.assert_close(model.conv1.weight, stem, rtol=0, atol=1e-6)  # one tiny step

"""The paper's own Caffe ResNets (MSRA's ResNet-50/101/152-model.caffemodel) load into ours.

Each file is written in MSRA's layout by Google's protobuf library (``caffe_helpers``) and run as
Caffe computes it, on Caffe's input (BGR, 0-255, mean-subtracted); the loaded model takes
torchvision's input (RGB, ImageNet-normalised) and must give the same logits.
"""

import numpy as np
import pytest
import torch
from caffe_helpers import (
    CAFFE_MEAN_BGR,
    caffe_forward,
    msra_blobs,
    net_parameter_class,
    write_caffemodel,
)

from resnet import create_model, load_weights
from resnet.errors import WeightsError
from resnet.models.caffe_names import TORCHVISION_MEAN, TORCHVISION_STD
from resnet.models.pretrained import read_state_dict
from resnet.models.resnet import ResNet

pytestmark = pytest.mark.usefixtures("one_thread")
MSRA = {"stride_in_1x1": True, "stem_pool": "max_ceil"}
SIDE = 64


def _inputs(seed=0):
    """An RGB image in 0..1, as our model takes it and as Caffe took it."""
    image = torch.rand(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))
    image = image.double()
    mean, std = (
        torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1)
        for v in (TORCHVISION_MEAN, TORCHVISION_STD)
    )
    caffe_mean = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float64).view(1, 3, 1, 1)
    return (image - mean) / std, 255 * image.flip(1) - caffe_mean


def _our_padding_in_caffe_units():
    """What conv1's zero padding of our input stands for in Caffe's (BGR) input."""
    mean = torch.tensor(TORCHVISION_MEAN, dtype=torch.float64).flip(0)
    return (255 * mean - torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float64)).tolist()


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    blobs, layers = msra_blobs()
    path = tmp_path_factory.mktemp("caffe") / "ResNet-50-model.caffemodel"
    write_caffemodel(path, blobs, layers)
    return path, blobs


def _compare(model, blobs, bottleneck=True):
    ours_input, caffe_input = _inputs()
    with torch.no_grad():
        ours = model.double().eval()(ours_input)
        exact = caffe_forward(blobs, caffe_input, bottleneck, _our_padding_in_caffe_units())
        caffe = caffe_forward(blobs, caffe_input, bottleneck)
    scale = exact.abs().max()
    return float((ours - exact).abs().max() / scale), float((ours - caffe).abs().max() / scale)


def test_msras_resnet50_gives_caffes_logits_on_torchvisions_input(resnet50_file):
    path, blobs = resnet50_file
    model = create_model("resnet50", **MSRA)
    report = load_weights(model, path)
    assert report.describe() == (
        "267 tensors loaded; Caffe's BGR 0-255 mean-subtracted input folded into conv1 (feed it "
        "ImageNet-normalised RGB as torchvision's weights take), fc included"
    )
    exact, against_caffe = _compare(model, blobs)
    # Exact where conv1's padding stands for the same colour; Caffe's own (zero) padding is half
    # a grey level away, which moves the logits by well under a thousandth.
    assert exact < 5e-6  # conv1 and bn1 are folded in float64, then stored as float32
    assert 0 < against_caffe < 1e-3


@pytest.mark.parametrize(
    ("blocks", "bottleneck", "numbered", "options"),
    [
        ((1, 2, 3, 1), True, True, {}),  # ResNet-101/152's res4b1, res4b2 ... names
        ((2, 2, 2, 2), False, False, {"legacy_dims": True, "double": True}),  # basic blocks
    ],
)
def test_other_depths_and_blob_encodings(tmp_path, blocks, bottleneck, numbered, options):
    from resnet.models.blocks import BasicBlock, Bottleneck

    blobs, layers = msra_blobs(blocks, bottleneck, numbered, conv1_bias=False, seed=1)
    path = tmp_path / "net.caffemodel"
    write_caffemodel(path, blobs, layers, **options)
    block = Bottleneck if bottleneck else BasicBlock
    model = ResNet(block, blocks, stem_pool="max_ceil", stride_in_1x1=bottleneck)
    load_weights(model, path)
    exact, _ = _compare(model, blobs, bottleneck)
    assert exact < 5e-6  # conv1 and bn1 are folded in float64, then stored as float32


def test_each_msra_option_changes_what_the_tensors_compute(resnet50_file):
    path, blobs = resnet50_file
    state = read_state_dict(path)
    for option, other in (("stride_in_1x1", False), ("stem_pool", "max")):
        changed = create_model("resnet50", **{**MSRA, option: other})
        changed.load_state_dict(state, strict=True)  # past load_weights' refusal
        exact, _ = _compare(changed, blobs)
        assert exact > 1e-3


def test_torchvisions_resnet50_refuses_the_papers_file(resnet50_file):
    path, _ = resnet50_file
    with pytest.raises(WeightsError, match="stride_in_1x1=True and resnet50 has False"):
        load_weights(create_model("resnet50"), path)
    # The stem pool is the fine-tuner's choice; the file fits a 10-class net too.
    report = load_weights(create_model("resnet50", stride_in_1x1=True, num_classes=10), path)
    assert "fc is new" in report.describe()


def test_not_a_resnet_or_not_a_caffe_model_is_refused(tmp_path):
    net_class = net_parameter_class()
    googlenet = net_class(name="GoogleNet")
    blob = googlenet.layer.add(name="conv1/7x7_s2", type="Convolution").blobs.add()
    blob.shape.dim.extend([2])
    blob.data.extend([1.0, 2.0])
    cases = {
        "googlenet": (googlenet.SerializeToString(), "not MSRA's ResNet names"),
        "v1": (_v1_net(net_class), "V1 format"),
        "empty": (net_class(name="deploy").SerializeToString(), "without any layer's weights"),
        "truncated": (googlenet.SerializeToString()[:-3], "not a readable Caffe model"),
        "text": (b'name: "ResNet-50"\nlayer {\n', "not a readable Caffe model"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.caffemodel"
        path.write_bytes(content)
        with pytest.raises(WeightsError, match=message):
            load_weights(create_model("resnet18"), path)


def test_the_decoder_reads_packed_and_unpacked_numbers_alike(tmp_path):
    from resnet.models.caffe_proto import read_caffemodel

    rng = np.random.default_rng(0)
    blobs = {"conv1": [rng.normal(size=(4, 3, 2, 2)).astype(np.float32)]}
    blobs["fc1000"] = [rng.normal(size=(5, 4)).astype(np.float32), np.zeros(5, np.float32)]
    layers = [("conv1", "Convolution"), ("relu", "ReLU"), ("fc1000", "InnerProduct")]
    for packed in (True, False):
        path = tmp_path / f"{packed}.caffemodel"
        write_caffemodel(path, blobs, layers, packed=packed)
        state = read_caffemodel(path)
        assert list(state) == ["conv1.blobs.0", "fc1000.blobs.0", "fc1000.blobs.1"]
        assert all(
            torch.equal(state[f"{layer}.blobs.{i}"], torch.from_numpy(array))
            for layer, arrays in blobs.items()
            for i, array in enumerate(arrays)
        )


def test_an_incomplete_msra_file_names_the_missing_layer(tmp_path):
    blobs, layers = msra_blobs((1, 1, 1, 1), conv1_bias=False)
    del blobs["scale3a_branch2b"]
    path = tmp_path / "cut.caffemodel"
    write_caffemodel(path, blobs, layers)
    with pytest.raises(WeightsError, match="'scale3a_branch2b' has no layer"):
        read_state_dict(path)


def _v1_net(net_class) -> bytes:
    net = net_class(name="CaffeNet")
    net.layers.add(name="conv1")
    return net.SerializeToString()


def test_a_backbone_loads_and_a_layer_of_another_net_is_refused(tmp_path):
    blobs, layers = msra_blobs((1, 1, 1, 1), conv1_bias=False)
    classifier = blobs.pop("fc1000")
    write_caffemodel(tmp_path / "backbone.caffemodel", blobs, layers)
    from resnet.models.blocks import Bottleneck

    model = ResNet(Bottleneck, (1, 1, 1, 1), **MSRA)
    report = load_weights(model, tmp_path / "backbone.caffemodel")
    assert report.describe().endswith("it has no classifier: fc is new")
    blobs["fc_flowers"] = [classifier[0][:5], classifier[1][:5]]
    layers.append(("fc_flowers", "InnerProduct"))
    write_caffemodel(tmp_path / "tuned.caffemodel", blobs, layers)
    with pytest.raises(WeightsError, match="layers outside MSRA's ResNet .fc_flowers.; .*fc1000"):
        read_state_dict(tmp_path / "tuned.caffemodel")

"""Detectron's ImageNet ResNets (MSRA's R-50.pkl in Caffe2's names) load into ours.

The file is MSRA's Caffe net (``caffe_helpers.msra_blobs``) with each BatchNorm + Scale folded
into Caffe2's affine per channel, pickled as Detectron did; Caffe's computation of the unfolded
net, on Detectron's input (BGR, 0-255, its mean subtracted) and stem pool, is the reference.
"""

import pickle

import numpy as np
import pytest
import torch
from caffe_helpers import caffe_forward, detectron_arrays, msra_blobs

from resnet import create_model, load_weights
from resnet.errors import WeightsError
from resnet.models.caffe_names import TORCHVISION_MEAN, TORCHVISION_STD
from resnet.models.detectron_names import DETECTRON_MEAN_BGR
from resnet.models.pretrained import read_state_dict

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def msra():
    return msra_blobs(conv1_bias=True, seed=2)[0]


def _pickle(path, content, protocol=2):
    with path.open("wb") as handle:
        pickle.dump(content, handle, protocol=protocol)
    return path


@pytest.mark.parametrize("layout", ["detectron", "detectron2"])
def test_detectrons_resnet50_gives_caffes_logits_on_torchvisions_input(msra, tmp_path, layout):
    arrays = detectron_arrays(msra)
    if layout == "detectron":  # Detectron's {"blobs": ...}, with its optimizer's momenta
        content = {"blobs": {**arrays, "conv1_w_momentum": np.zeros(3, np.float32)}}
    else:
        content = {"model": arrays, "__author__": "Detectron2 Model Zoo"}
    path = _pickle(tmp_path / "R-50.pkl", content)
    model = create_model("resnet50", stride_in_1x1=True)
    report = load_weights(model, path)
    assert "folded into conv1" in report.describe()
    assert report.describe().endswith("fc included")

    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)).double()
    mean, std = (
        torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1)
        for v in (TORCHVISION_MEAN, TORCHVISION_STD)
    )
    detectron_mean = torch.tensor(DETECTRON_MEAN_BGR, dtype=torch.float64).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = model.double().eval()((image - mean) / std)
        # Detectron's mean is 255 times torchvision's: zero padding means the same colour.
        expected = caffe_forward(msra, 255 * image.flip(1) - detectron_mean, ceil=False)
    assert float((ours - expected).abs().max() / expected.abs().max()) < 5e-6


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = _pickle(tmp_path / "evil.pkl", {"blobs": {"conv1_w": Payload()}})
    with pytest.raises(WeightsError, match=r"not a pickle of arrays only \(it asks for io\.open"):
        read_state_dict(path)
    assert not marker.exists()


def test_other_pickles_are_refused(msra, tmp_path):
    arrays = detectron_arrays(msra)
    grouped = {**arrays, "res2_0_branch2b_w": np.zeros((64, 2, 3, 3), np.float32)}
    group_norm = {k.replace("_bn_", "_gn_"): v for k, v in arrays.items()}
    torchvision_d2 = {"stem.conv1.weight": np.zeros((64, 3, 7, 7), np.float32)}
    cases = {
        "X-101-32x8d.pkl": ({"blobs": grouped}, "FAIR's ResNeXt"),
        "R-50-GN.pkl": ({"blobs": group_norm}, "not its batch-norm ResNet"),
        "d2.pkl": ({"model": torchvision_d2}, "not in Detectron's or detectron2's ResNet names"),
        "list.pkl": ([1, 2], "without a dict of arrays"),
        "detector.pkl": (
            {
                "blobs": {
                    **arrays,
                    "fpn_inner_res5_2_sum_w": np.zeros((256, 2048, 1, 1), np.float32),
                }
            },
            r"outside Detectron's ImageNet ResNet \(fpn_inner_res5_2_sum_w\)",
        ),
    }
    for name, (content, message) in cases.items():
        with pytest.raises(WeightsError, match=message):
            read_state_dict(_pickle(tmp_path / name, content))
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps({"blobs": arrays}, protocol=2)[:1000])
    with pytest.raises(WeightsError, match="not a pickle of arrays only"):
        read_state_dict(tmp_path / "cut.pkl")

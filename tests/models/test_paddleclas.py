"""PaddleClas's ResNets (``ResNet50_pretrained.pdparams``: vb, ``ResNet50_vd_...``: vd) load into
resnet50 and resnet50d and compute what PaddleClas computes (``paddle_helpers.paddle_forward``,
which matched PaddlePaddle 3.3.1 running PaddleClas's own ResNet50/50_vd/101_vd to 2.3e-6)."""

import pickle

import numpy as np
import pytest
import torch
from paddle_helpers import RESNET18, paddle_arrays, paddle_forward, write_pdparams

from resnet import create_model, load_weights
from resnet.cli import main
from resnet.errors import ConfigError, WeightsError

pytestmark = pytest.mark.usefixtures("one_thread")
IMAGES = torch.from_numpy(np.random.default_rng(0).normal(0, 1, (2, 3, 64, 64)))


@pytest.mark.parametrize("vd, model", [(True, "resnet50d"), (False, "resnet50")])
def test_a_pdparams_file_computes_what_paddleclas_computes(tmp_path, vd, model):
    arrays = paddle_arrays(vd=vd)
    path = tmp_path / ("ResNet50_vd_pretrained.pdparams" if vd else "ResNet50_pretrained.pdparams")
    write_pdparams(path, arrays)
    net = create_model(model, num_classes=10)
    assert load_weights(net, path).describe().endswith("fc included")
    with torch.no_grad():
        ours = net.double().eval()(IMAGES)
    reference = paddle_forward(arrays, IMAGES, vd=vd)
    assert ((ours - reference).abs().max() / reference.abs().max()).item() < 1e-10
    other = "resnet50" if vd else "resnet50d"
    with pytest.raises(WeightsError, match=f"does not fit model {other}.*ResNet50_vd: resnet50d"):
        load_weights(create_model(other, num_classes=10), path)


def test_resnet18_and_34_vd_project_every_stages_first_shortcut(tmp_path):
    """PaddleClas's basic-block nets project the first stage's shortcut too (a 1x1 conv where
    torchvision's adds the input): they load into resnet18/34d built with
    project_first_shortcut, and a default resnet18 is told so."""
    for name, blocks, vd, model in [("ResNet18", RESNET18, False, "resnet18"),
                                    ("ResNet34_vd", (3, 4, 6, 3), True, "resnet34d")]:  # fmt: skip
        arrays = paddle_arrays(blocks, vd=vd, bottleneck=False)
        path = tmp_path / f"{name}_pretrained.pdparams"
        write_pdparams(path, arrays)
        net = create_model(model, num_classes=10, project_first_shortcut=True)
        load_weights(net, path)
        with torch.no_grad():
            ours = net.double().eval()(IMAGES)
        reference = paddle_forward(arrays, IMAGES, blocks, vd=vd)
        assert ((ours - reference).abs().max() / reference.abs().max()).item() < 1e-10
        with pytest.raises(WeightsError, match="project_first_shortcut=True and .* has False"):
            load_weights(create_model(model, num_classes=10), path)


def test_what_is_not_paddleclas_resnet_is_refused(tmp_path):
    arrays = paddle_arrays(vd=True)
    net = create_model("resnet50d", num_classes=10)
    missing = {k: v for k, v in arrays.items() if k != "blocks.4.conv1.bn._variance"}
    cases = [
        (missing, "without blocks.4.conv1.bn._variance; the file is incomplete"),
        ({**arrays, "blocks.0.se.weight": np.zeros(3, np.float32)},
         r"tensors outside PaddleClas's ResNet \(blocks.0.se.weight\)"),
        ({"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)},
         "a .pdparams whose arrays are not in PaddleClas's ResNet names"),
    ]  # fmt: skip
    for index, (content, message) in enumerate(cases):
        write_pdparams(tmp_path / f"{index}.pdparams", content)
        with pytest.raises(WeightsError, match=message):
            load_weights(net, tmp_path / f"{index}.pdparams")
    v1 = create_model("resnet50d", num_classes=10, stride_in_1x1=True)
    with pytest.raises(WeightsError, match="stride_in_1x1=False and resnet50d has True"):
        load_weights(v1, _written(tmp_path, arrays))

    class Runs:  # a pickle that would call os.system on load
        def __reduce__(self):
            import os

            return os.system, ("echo ran",)

    (tmp_path / "evil.pdparams").write_bytes(pickle.dumps({"stem.0.conv.weight": Runs()}))
    with pytest.raises(WeightsError, match=r"it asks for \w+\.system, which is not an array"):
        load_weights(net, tmp_path / "evil.pdparams")


def _written(tmp_path, arrays):
    path = tmp_path / "ResNet50_vd_pretrained.pdparams"
    write_pdparams(path, arrays)
    return path


def test_inspect_names_the_model_a_pdparams_file_loads_into(tmp_path, capsys):
    path = _written(tmp_path, paddle_arrays(vd=True))
    assert main(["inspect", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "a 10-class classifier" in printed and "loads into: resnet50d\n" in printed


def test_project_first_shortcut_is_a_real_option():
    """It adds a projection where the identity fitted, says whether it did, and is refused where
    it means nothing."""
    plain, projected = (
        create_model("resnet18"),
        create_model("resnet18", project_first_shortcut=True),
    )
    assert plain.layer1[0].downsample is None and not plain.project_first_shortcut
    assert projected.layer1[0].downsample is not None and projected.project_first_shortcut
    extra = sum(p.numel() for p in projected.parameters()) - sum(
        p.numel() for p in plain.parameters()
    )
    assert extra == 64 * 64 + 2 * 64  # a 1x1 conv and a BatchNorm's scale and shift
    # A bottleneck net projects its first shortcut anyway: the same net, the attribute False.
    assert not create_model("resnet50", project_first_shortcut=True).project_first_shortcut
    for kwargs in ({"shortcut": "A"}, {"residual": False}):
        with pytest.raises(ConfigError, match="project_first_shortcut applies to projection"):
            create_model("resnet18", project_first_shortcut=True, **kwargs)

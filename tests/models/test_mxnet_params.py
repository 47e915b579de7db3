"""MXNet ``.params`` files load: Gluon's model zoo ResNet v1 in each naming MXNet saves it with,
and GluonCV's v1b family. The reference for Gluon's nets is their ONNX graph run by onnxruntime
(``gluon_helpers``); the layout (``mxnet_helpers``) was checked byte for byte, and the names
array for array, against files MXNet 1.9.1 and GluonCV 0.11 wrote (README)."""

import numpy as np
import pytest
import torch
from gluon_helpers import (
    BASIC_BLOCKS,
    BOTTLENECK_BLOCKS,
    gluon_resnet_v1,
    gluon_resnet_v2,
    run_onnx,
)
from mxnet_helpers import gluon_arrays, structural_names, structural_names_v2, write_mxnet_params

from resnet import create_model, load_weights
from resnet.errors import WeightsError
from resnet.models.mxnet_params import read_mxnet_params

pytestmark = pytest.mark.usefixtures("one_thread")
IMAGES = np.random.default_rng(0).normal(0, 1, (2, 3, 64, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def resnet50_v1():
    model = gluon_resnet_v1(BOTTLENECK_BLOCKS, prefix="resnetv11_")
    return gluon_arrays(model), run_onnx(model, IMAGES)


def _namings(arrays, blocks, bottleneck, prefix="resnetv11_", v2=False):
    """The names MXNet saves Gluon's nets with: collect_params, save_params (prefix dropped), a
    Module checkpoint (arg:/aux:), save_parameters (structural)."""
    stripped = {k.removeprefix(prefix): v for k, v in arrays.items()}
    module = {("aux:" if "running" in k else "arg:") + k: v for k, v in arrays.items()}
    names = (structural_names_v2 if v2 else structural_names)(blocks, bottleneck, prefix)
    structural = {names[k]: v for k, v in arrays.items()}
    return {"prefixed": arrays, "stripped": stripped, "module": module, "structural": structural}


def _error(net, path, reference) -> float:
    load_weights(net, path)
    with torch.no_grad():
        ours = net.eval()(torch.from_numpy(IMAGES)).numpy()
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def test_gluon_resnet50_v1_in_every_naming(resnet50_v1, tmp_path):
    arrays, reference = resnet50_v1
    for naming, content in _namings(arrays, BOTTLENECK_BLOCKS, True).items():
        path = tmp_path / f"resnet50_v1-{naming}.params"
        write_mxnet_params(path, content)
        net = create_model("resnet50", num_classes=10, stride_in_1x1=True)
        assert _error(net, path, reference) < 1e-5, naming
    with pytest.raises(WeightsError, match="stride_in_1x1=True and resnet50 has False"):
        load_weights(create_model("resnet50", num_classes=10), path)


def test_gluon_resnet18_v1_and_older_array_versions(tmp_path):
    model = gluon_resnet_v1(BASIC_BLOCKS, bottleneck=False, prefix="resnetv10_")
    arrays, reference = gluon_arrays(model), run_onnx(model, IMAGES)
    content = _namings(arrays, BASIC_BLOCKS, False, "resnetv10_")["stripped"]
    for version in (0, 1, 2):
        path = tmp_path / f"resnet18_v1-{version}.params"
        write_mxnet_params(path, content, version=version)
        assert _error(create_model("resnet18", num_classes=10), path, reference) < 1e-5


@pytest.mark.parametrize("blocks, bottleneck", [(BASIC_BLOCKS, False), (BOTTLENECK_BLOCKS, True)])
def test_gluon_v2_in_every_naming(blocks, bottleneck, tmp_path):
    """Gluon's resnet18_v2 / resnet50_v2 (the input BatchNorm, pre-activation blocks)."""
    model = gluon_resnet_v2(blocks, bottleneck=bottleneck, prefix="resnetv20_")
    arrays, reference = gluon_arrays(model), run_onnx(model, IMAGES)
    name = "gluon_resnet50_v2" if bottleneck else "gluon_resnet18_v2"
    namings = _namings(arrays, blocks, bottleneck, "resnetv20_", v2=True)
    if bottleneck:  # the counted names of bottlenecks: test_gluon_onnx.py's resnet50-v2-7
        namings = {"structural": namings["structural"]}
    for naming, content in namings.items():
        path = tmp_path / f"{name}-{naming}.params"
        write_mxnet_params(path, content)
        assert _error(create_model(name, num_classes=10), path, reference) < 1e-5, naming


def test_gluoncv_v1d_is_timms_resnet50d(tmp_path):
    import timm

    reference = timm.create_model("resnet50d", num_classes=10).eval()
    for module in reference.modules():  # statistics as a trained net's
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    gluoncv = {}  # GluonCV's save_parameters names: BatchNorm gamma and beta
    for key, value in reference.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        is_bn = f"{key.rpartition('.')[0]}.running_mean" in reference.state_dict()
        part = {"weight": "gamma", "bias": "beta"}.get(key.rpartition(".")[2]) if is_bn else None
        gluoncv[f"{key.rpartition('.')[0]}.{part}" if part else key] = value.numpy()
    write_mxnet_params(tmp_path / "resnet50_v1d.params", gluoncv)
    net = create_model("resnet50d", num_classes=10)
    with torch.no_grad():
        expected = reference(torch.from_numpy(IMAGES)).numpy()
    assert _error(net, tmp_path / "resnet50_v1d.params", expected) < 1e-6
    with pytest.raises(WeightsError, match="does not fit model resnet50.*GluonCV's"):
        load_weights(create_model("resnet50", num_classes=10), tmp_path / "resnet50_v1d.params")


def test_what_is_not_a_gluon_resnet_v1_file_is_refused(resnet50_v1, tmp_path):
    arrays, _ = resnet50_v1
    net = create_model("resnet50", num_classes=10, stride_in_1x1=True)
    v2 = gluon_arrays(gluon_resnet_v2(BOTTLENECK_BLOCKS, prefix="resnetv20_"))
    cases = [
        (v2, "Gluon's ResNet v2 .*input_norm=True and resnet50 has False"),
        ({**arrays, "resnetv11_stage1_dense0_weight": np.zeros((4, 4), np.float32)},
         r"tensors outside Gluon's ResNet v1 \(resnetv11_stage1_dense0_weight\)"),
        ({"conv1_weight": np.zeros((64, 3, 7, 7), np.float32)},
         "an MXNet .params file whose arrays are not in Gluon's or GluonCV's ResNet names"),
    ]  # fmt: skip
    for index, (content, message) in enumerate(cases):
        write_mxnet_params(tmp_path / f"{index}.params", content)
        with pytest.raises(WeightsError, match=message):
            load_weights(net, tmp_path / f"{index}.params")


def test_the_reader_takes_mxnets_types_and_refuses_what_is_not_its_format(tmp_path):
    path = tmp_path / "mixed.params"
    values = {"a": np.arange(6, dtype="<f8").reshape(2, 3), "b": np.ones(2, "<f2"),
              "steps": np.array([7], "<i8")}  # fmt: skip
    write_mxnet_params(path, values)
    read = read_mxnet_params(path)
    assert sorted(read) == ["a", "b"] and read["a"].dtype == torch.float32  # integers skipped
    assert read["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and read["b"].tolist() == [1, 1]
    truncated = tmp_path / "truncated.params"
    truncated.write_bytes(path.read_bytes()[:60])
    with pytest.raises(WeightsError, match="not a readable MXNet .params file .*past the end"):
        read_mxnet_params(truncated)
    (tmp_path / "other.params").write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="no 0x112 magic"):
        read_mxnet_params(tmp_path / "other.params")
    sparse = bytearray(path.read_bytes())
    sparse[28:32] = (1).to_bytes(4, "little")  # the first array's storage type: row-sparse
    (tmp_path / "sparse.params").write_bytes(bytes(sparse))
    with pytest.raises(WeightsError, match="holds a sparse array"):
        read_mxnet_params(tmp_path / "sparse.params")

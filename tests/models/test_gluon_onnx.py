"""The ONNX model zoo's ResNet v1 and v2 files (MXNet Gluon's ResNetV1 and V2 exported:
resnet50-v1-7.onnx, resnet50-v2-7.onnx) load into ours: the file's own graph, run by
onnxruntime, is the reference."""

import copy

import numpy as np
import onnx
import pytest
import torch
from gluon_helpers import BASIC_BLOCKS, gluon_resnet_v1, gluon_resnet_v2, run_onnx
from onnx import numpy_helper

from resnet import create_model, load_weights
from resnet.cli import main
from resnet.errors import WeightsError

pytestmark = pytest.mark.usefixtures("one_thread")
IMAGES = np.random.default_rng(0).normal(0, 1, (2, 3, 64, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    model = gluon_resnet_v1()
    path = tmp_path_factory.mktemp("zoo") / "resnet50-v1-7.onnx"
    onnx.save(model, path)
    return path, model


def _relative_error(net, path, reference) -> float:
    load_weights(net, path)
    with torch.no_grad():
        ours = net.eval()(torch.from_numpy(IMAGES)).numpy()
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def test_resnet50_v1_computes_what_its_onnx_graph_computes(resnet50_file):
    path, model = resnet50_file
    reference = run_onnx(model, IMAGES)
    net = create_model("resnet50", num_classes=10, stride_in_1x1=True)
    assert _relative_error(net, path, reference) < 1e-5  # float32 both sides
    # Gluon's bottleneck strides its first 1x1: torchvision's v1.5 would compute another net.
    with pytest.raises(WeightsError, match="stride_in_1x1=True and resnet50 has False"):
        load_weights(create_model("resnet50", num_classes=10), path)


def test_resnet18_v1_with_float_data_vectors(tmp_path):
    model = gluon_resnet_v1(BASIC_BLOCKS, bottleneck=False, raw=False, prefix="resnetv15_")
    onnx.save(model, tmp_path / "resnet18-v1-7.onnx")
    net = create_model("resnet18", num_classes=10)  # basic blocks stride their 3x3 everywhere
    error = _relative_error(net, tmp_path / "resnet18-v1-7.onnx", run_onnx(model, IMAGES))
    assert error < 1e-5


def _saved(model, path, change=None):
    model = copy.deepcopy(model)
    if change is not None:
        change(model.graph.initializer)
    onnx.save(model, path)
    return path


def test_what_is_not_the_zoos_float_v1_is_refused(resnet50_file, tmp_path):
    path, model = resnet50_file
    net = create_model("resnet50", num_classes=10, stride_in_1x1=True)

    def rename(prefix):
        def change(tensors):
            for tensor in tensors:
                tensor.name = tensor.name.replace("resnetv17_", prefix)

        return change

    def add(array, name):
        return lambda tensors: tensors.append(numpy_helper.from_array(array, name))

    def drop(name):
        return lambda tensors: tensors.remove(next(t for t in tensors if t.name == name))

    cases = [
        (rename("model."), "an ONNX model whose weights are not in Gluon's ResNet names"),
        (add(np.zeros(4, np.int8), "resnetv17_stage1_conv0_weight_quantized"),
         "a quantized ONNX model .*is int8.*pass the float model"),
        (add(np.zeros((64, 4)), "resnetv17_stage1_dense0_weight"),
         r"tensors outside Gluon's ResNet v1 \(resnetv17_stage1_dense0_weight\)"),
        (drop("resnetv17_stage2_batchnorm3_running_var"),
         "without resnetv17_stage2_batchnorm3_running_var; the file is incomplete"),
    ]  # fmt: skip
    for index, (change, message) in enumerate(cases):
        with pytest.raises(WeightsError, match=message):
            load_weights(net, _saved(model, tmp_path / f"{index}.onnx", change))
    # A graph's integer constants (a Reshape's shape) are not weights: skipped.
    shaped = _saved(model, tmp_path / "shape.onnx", add(np.array([1, -1]), "reshape0_shape"))
    assert "fc included" in load_weights(net, shaped).describe()

    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="not a readable ONNX model"):
        load_weights(net, truncated)
    external = tmp_path / "external" / "model.onnx"
    external.parent.mkdir()
    onnx.save(model, external, save_as_external_data=True, size_threshold=0)
    with pytest.raises(WeightsError, match="in an external data file; save it whole once"):
        load_weights(net, external)


def test_an_onnx_zoo_file_becomes_a_checkpoint(resnet50_file, tmp_path, capsys):
    path, model = resnet50_file
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(f"class {i}" for i in range(10)))
    out = tmp_path / "zoo-resnet50"
    flags = ["--model", "resnet50", "--out", str(out), "--class-names", str(names)]
    assert main(["import", str(path), *flags]) == 2  # the v1 stride is the user's to set
    assert "stride_in_1x1=True" in capsys.readouterr().err
    flags += ["--set", "model_kwargs={stride_in_1x1: true}"]
    assert main(["import", str(path), *flags]) == 0
    capsys.readouterr()
    assert main(["inspect", str(path), "--models", "resnet50*"]) == 0
    printed = capsys.readouterr().out
    assert (
        "Gluon's ResNet v1 (MXNet's model zoo, the ONNX zoo's" in printed
        and "loads into: resnet50\n" in printed
    )
    assert '--set "model_kwargs={stride_in_1x1: true}"' in printed
    # Run as it is, the file lacks what a checkpoint says (classes, input): the message says how.
    assert main(["predict", "--checkpoint", str(path), str(names)]) == 2
    assert "resnet import FILE --model NAME --out DIR" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, blocks, bottleneck",
    [("gluon_resnet50_v2", None, True), ("gluon_resnet18_v2", BASIC_BLOCKS, False)],
)
def test_v2_computes_what_its_onnx_graph_computes(name, blocks, bottleneck, tmp_path, capsys):
    """resnet50-v2-7.onnx: the input's BatchNorm, a BN-ReLU stem, pre-activation blocks."""
    model = gluon_resnet_v2(blocks or (3, 4, 6, 3), bottleneck=bottleneck)
    path = tmp_path / "resnet-v2-7.onnx"
    onnx.save(model, path)
    net = create_model(name, num_classes=10)
    assert _relative_error(net, path, run_onnx(model, IMAGES)) < 1e-5
    depth = name.removeprefix("gluon_resnet").removesuffix("_v2")
    assert main(["inspect", str(path), "--models", f"*{depth}*"]) == 0  # preact_resnet50 too
    printed = capsys.readouterr().out
    assert "Gluon's ResNet v2 (MXNet's model zoo" in printed and f"loads into: {name}\n" in printed
    # The same blocks without the input norm (timm's resnetv2, ours) would compute another net.
    with pytest.raises(WeightsError, match="input_norm=True and preact_resnet.. has False"):
        load_weights(create_model(name.replace("gluon_", "preact_").removesuffix("_v2")), path)


def test_a_v2_input_norm_with_a_scale_is_refused(tmp_path):
    model = gluon_resnet_v2(BASIC_BLOCKS, bottleneck=False)
    gamma = next(t for t in model.graph.initializer if t.name == "resnetv24_batchnorm0_gamma")
    gamma.CopyFrom(numpy_helper.from_array(np.full(3, 2.0, np.float32), gamma.name))
    onnx.save(model, tmp_path / "scaled.onnx")
    with pytest.raises(WeightsError, match="input BatchNorm .resnetv24_batchnorm0_. has a scale"):
        load_weights(create_model("gluon_resnet18_v2", num_classes=10), tmp_path / "scaled.onnx")

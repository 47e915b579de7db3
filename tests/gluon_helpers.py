"""ONNX files in the ONNX model zoo's ResNet v1 and v2 layouts (``resnet50-v1-7.onnx``,
``resnet50-v2-7.onnx``: MXNet Gluon's ResNetV1 and ResNetV2 exported), written with the onnx
package and run by onnxruntime as the reference.

The graph is Gluon's: a 7x7 stem, BatchNorm, ReLU and 3x3 max-pool; stages whose blocks number
their convolutions in the order Gluon made them (body, then the first block's downsample);
bottlenecks strided on their first 1x1, which (like the last 1x1) has a bias; global average
pool, flatten and a dense layer. v2 normalises the input with a BatchNorm of scale 1 and shift
0, and its pre-activation blocks number a BatchNorm before each convolution. Initializers are
named as Gluon names them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BASIC_BLOCKS = (2, 2, 2, 2)  # resnet18
BOTTLENECK_BLOCKS = (3, 4, 6, 3)  # resnet50


def _widths(bottleneck: bool) -> tuple[int, ...]:
    """Each stage's output channels."""
    return (256, 512, 1024, 2048) if bottleneck else (64, 128, 256, 512)


class _Graph:
    def __init__(self, prefix: str, seed: int, raw: bool, conv_bias: bool) -> None:
        self.prefix, self.raw, self.conv_bias = prefix, raw, conv_bias
        self.rng = np.random.default_rng(seed)
        self.nodes, self.initializers, self.count = [], [], 0

    def tensor(self, name: str, array: np.ndarray) -> str:
        array = array.astype(np.float32)
        if self.raw or array.ndim > 1:
            self.initializers.append(numpy_helper.from_array(array, name))
        else:  # float_data, as some exporters write vectors
            values = array.flatten().tolist()
            self.initializers.append(helper.make_tensor(name, TensorProto.FLOAT, array.shape,
                                                        values))  # fmt: skip
        return name

    def output(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def conv_bn(self, x, scope, index, cin, cout, k, stride, bias=False, relu=True) -> str:
        bias_name = f"{scope}conv{index}_bias" if bias and self.conv_bias else None
        y = self.conv(x, f"{scope}conv{index}_weight", cin, cout, k, stride, bias_name)
        z = self.bn(y, f"{scope}batchnorm{index}_", cout)
        return self.relu(z) if relu else z

    def conv(self, x, name, cin, cout, k, stride, bias_name=None) -> str:
        weight = self.rng.normal(0, np.sqrt(2 / (cin * k * k)), (cout, cin, k, k))
        inputs = [x, self.tensor(name, weight)]
        if bias_name is not None:
            inputs.append(self.tensor(bias_name, self.rng.uniform(-0.2, 0.2, cout)))
        y = self.output()
        self.nodes.append(helper.make_node("Conv", inputs, [y], kernel_shape=[k, k],
                                           strides=[stride] * 2, pads=[k // 2] * 4))  # fmt: skip
        return y

    def bn(self, x, norm, channels, fixed=False) -> str:
        """A BatchNorm ``norm`` + gamma, beta, ...; ``fixed``: v2's input (scale 1, shift 0)."""
        low, high = (
            self.rng.uniform(0.5, 1.5, (2, channels)),
            self.rng.uniform(-0.2, 0.2, (2, channels)),
        )
        stats = [low[0], high[0], high[1], low[1]]  # gamma, beta, running_mean, running_var
        if fixed:
            stats[:2] = [np.ones(channels), np.zeros(channels)]
        names = [self.tensor(norm + part, value) for part, value in
                 zip(("gamma", "beta", "running_mean", "running_var"), stats)]  # fmt: skip
        y = self.output()
        self.nodes.append(helper.make_node("BatchNormalization", [x, *names], [y], epsilon=1e-5))
        return y

    def max_pool(self, x) -> str:
        y = self.output()
        self.nodes.append(helper.make_node("MaxPool", [x], [y], kernel_shape=[3, 3],
                                           strides=[2, 2], pads=[1, 1, 1, 1]))  # fmt: skip
        return y

    def relu(self, x) -> str:
        y = self.output()
        self.nodes.append(helper.make_node("Relu", [x], [y]))
        return y


def gluon_resnet_v1(blocks=BOTTLENECK_BLOCKS, bottleneck=True, num_classes=10, *, seed=0,
                    prefix="resnetv17_", raw=True, conv_bias=True) -> onnx.ModelProto:  # fmt: skip
    """Gluon's ResNetV1 as an ONNX model with random weights: input ``data`` (N, 3, H, W)."""
    graph = _Graph(prefix, seed, raw, conv_bias)
    x = graph.conv_bn("data", prefix, 0, 3, 64, 7, 2)
    x, cin = graph.max_pool(x), 64
    for stage, (count, cout) in enumerate(zip(blocks, _widths(bottleneck)), start=1):
        scope, index = f"{prefix}stage{stage}_", 0
        for block in range(count):
            stride = 2 if stage > 1 and block == 0 else 1
            if bottleneck:
                mid = cout // 4
                y = graph.conv_bn(x, scope, index, cin, mid, 1, stride, bias=True)
                y = graph.conv_bn(y, scope, index + 1, mid, mid, 3, 1)
                y = graph.conv_bn(y, scope, index + 2, mid, cout, 1, 1, bias=True, relu=False)
                index += 3
            else:
                y = graph.conv_bn(x, scope, index, cin, cout, 3, stride)
                y = graph.conv_bn(y, scope, index + 1, cout, cout, 3, 1, relu=False)
                index += 2
            shortcut = x
            if cin != cout:  # Gluon's downsample: made after the body, numbered after it
                shortcut = graph.conv_bn(x, scope, index, cin, cout, 1, stride, relu=False)
                index += 1
            added = graph.output()
            graph.nodes.append(helper.make_node("Add", [y, shortcut], [added]))
            x, cin = graph.relu(added), cout
    return _classified(graph, x, cin, num_classes, prefix, "resnet_v1")


def gluon_resnet_v2(blocks=BOTTLENECK_BLOCKS, bottleneck=True, num_classes=10, *, seed=0,
                    prefix="resnetv24_", raw=True) -> onnx.ModelProto:  # fmt: skip
    """Gluon's ResNetV2 as an ONNX model with random weights: input ``data`` (N, 3, H, W)."""
    graph = _Graph(prefix, seed, raw, conv_bias=False)
    x = graph.bn("data", f"{prefix}batchnorm0_", 3, fixed=True)
    x = graph.relu(graph.bn(graph.conv(x, f"{prefix}conv0_weight", 3, 64, 7, 2),
                            f"{prefix}batchnorm1_", 64))  # fmt: skip
    x, cin = graph.max_pool(x), 64
    for stage, (count, cout) in enumerate(zip(blocks, _widths(bottleneck)), start=1):
        scope, conv, norm = f"{prefix}stage{stage}_", 0, 0
        for block in range(count):
            stride = 2 if stage > 1 and block == 0 else 1
            if bottleneck:  # 1x1, strided 3x3, 1x1
                shapes = [(cin, cout // 4, 1, 1), (cout // 4, cout // 4, 3, stride),
                          (cout // 4, cout, 1, 1)]  # fmt: skip
            else:
                shapes = [(cin, cout, 3, stride), (cout, cout, 3, 1)]
            y, shortcut = x, x
            for i, (a, b, k, s) in enumerate(shapes):
                y = graph.relu(graph.bn(y, f"{scope}batchnorm{norm + i}_", a))
                if i == 0 and cin != cout:  # the projection takes the normalised input
                    shortcut = graph.conv(y, f"{scope}conv{conv + len(shapes)}_weight", cin, cout,
                                          1, stride)  # fmt: skip
                y = graph.conv(y, f"{scope}conv{conv + i}_weight", a, b, k, s)
            conv, norm = conv + len(shapes) + (cin != cout), norm + len(shapes)
            added = graph.output()
            graph.nodes.append(helper.make_node("Add", [y, shortcut], [added]))
            x, cin = added, cout
    x = graph.relu(graph.bn(x, f"{prefix}batchnorm2_", cin))
    return _classified(graph, x, cin, num_classes, prefix, "resnet_v2")


def _classified(graph, x, cin, num_classes, prefix, name) -> onnx.ModelProto:
    pooled, flat, logits = graph.output(), graph.output(), "output"
    graph.nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled]))
    graph.nodes.append(helper.make_node("Flatten", [pooled], [flat]))
    weight = graph.rng.normal(0, 0.05, (num_classes, cin))
    bias = graph.rng.uniform(-0.1, 0.1, num_classes)
    dense = [graph.tensor(f"{prefix}dense0_weight", weight),
             graph.tensor(f"{prefix}dense0_bias", bias)]  # fmt: skip
    graph.nodes.append(helper.make_node("Gemm", [flat, *dense], [logits], transB=1))
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            name,
            [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, "H", "W"])],
            [helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["N", num_classes])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    onnx.checker.check_model(model)
    return model


def run_onnx(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])  # fmt: skip
    return session.run(None, {"data": x.astype(np.float32)})[0]

"""PaddleClas ResNet files (``ResNet50_vd_pretrained.pdparams``) written as ``paddle.save`` writes
them, and PaddleClas's forward pass written out in float64, for tests without PaddlePaddle.

``paddle.save(model.state_dict(), path)`` pickles (protocol 4) a dict of numpy arrays in the
layers' structured names, plus ``StructuredToParameterName@@``: each structured name's
parameter name (``conv2d_0.w_0``). PaddleClas's ResNet ("legendary models"): a stem of
ConvBNLayers (vb: one 7x7 of 64; vd: 3x3s of 32, 32, 64), a 3x3 max-pool, blocks numbered
through the net, each stage's first with a ``short`` ConvBNLayer (vd: an average pool, 2x2,
ceil mode, padding left out, before its 1x1 except in the first stage), and an fc stored
(in, out). Checked once against PaddlePaddle 3.3.1 and PaddleClas itself (README).
"""

from __future__ import annotations

import pickle

import numpy as np
import torch
import torch.nn.functional as F

RESNET50 = (3, 4, 6, 3)
RESNET18 = (2, 2, 2, 2)  # basic blocks


def paddle_arrays(
    blocks=RESNET50, vd=True, num_classes=10, seed=0, bottleneck=True
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}

    def conv_bn(name, cin, cout, k):
        w = rng.normal(0, np.sqrt(2 / (cin * k * k)), (cout, cin, k, k))
        arrays[f"{name}.conv.weight"] = w
        arrays[f"{name}.bn.weight"] = rng.uniform(0.5, 1.5, cout)
        arrays[f"{name}.bn.bias"] = rng.uniform(-0.2, 0.2, cout)
        arrays[f"{name}.bn._mean"] = rng.uniform(-0.2, 0.2, cout)
        arrays[f"{name}.bn._variance"] = rng.uniform(0.5, 1.5, cout)

    stem = [(3, 32, 3), (32, 32, 3), (32, 64, 3)] if vd else [(3, 64, 7)]
    for i, (cin, cout, k) in enumerate(stem):
        conv_bn(f"stem.{i}", cin, cout, k)
    j, cin = 0, 64
    for count, width in zip(blocks, (64, 128, 256, 512)):
        cout = width * 4 if bottleneck else width
        for b in range(count):
            if bottleneck:
                conv_bn(f"blocks.{j}.conv0", cin, width, 1)
                conv_bn(f"blocks.{j}.conv1", width, width, 3)
                conv_bn(f"blocks.{j}.conv2", width, cout, 1)
            else:
                conv_bn(f"blocks.{j}.conv0", cin, width, 3)
                conv_bn(f"blocks.{j}.conv1", width, width, 3)
            if b == 0:  # every stage's first block projects, the first stage's too
                conv_bn(f"blocks.{j}.short", cin, cout, 1)
            j, cin = j + 1, cout
    arrays["fc.weight"] = rng.normal(0, 0.05, (cin, num_classes))  # Paddle's Linear: (in, out)
    arrays["fc.bias"] = rng.uniform(-0.1, 0.1, num_classes)
    return {name: value.astype(np.float32) for name, value in arrays.items()}


def write_pdparams(path, arrays: dict[str, np.ndarray]) -> None:
    """As ``paddle.save(state_dict, path)``: protocol 4, the arrays and their name table."""
    names = {}
    for index, name in enumerate(arrays):
        kind = "conv2d" if "conv.weight" in name else "batch_norm" if ".bn." in name else "linear"
        names[name] = f"{kind}_{index}.w_0"
    with open(path, "wb") as handle:
        pickle.dump({**arrays, "StructuredToParameterName@@": names}, handle, protocol=4)


def paddle_forward(arrays, x: torch.Tensor, blocks=RESNET50, vd=True) -> torch.Tensor:
    """PaddleClas's ResNet on ``x`` (float64), from the arrays alone."""
    a = {name: torch.from_numpy(value).double() for name, value in arrays.items()}

    def conv_bn(x, name, stride=1, relu=True, pool=False):
        if pool:  # vd's shortcut: AvgPool2D(2, 2, ceil_mode=True), exclusive of padding
            x = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)
        w = a[f"{name}.conv.weight"]
        x = F.conv2d(x, w, stride=stride, padding=(w.shape[-1] - 1) // 2)
        mean, var = a[f"{name}.bn._mean"], a[f"{name}.bn._variance"]
        scale = a[f"{name}.bn.weight"] / torch.sqrt(var + 1e-5)
        x = (x - mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)
        x = x + a[f"{name}.bn.bias"].view(1, -1, 1, 1)
        return F.relu(x) if relu else x

    x = x.double()
    strides = [2, 1, 1] if vd else [2]
    for i, stride in enumerate(strides):
        x = conv_bn(x, f"stem.{i}", stride)
    x = F.max_pool2d(x, 3, 2, 1)
    j = 0
    for stage, count in enumerate(blocks):
        for b in range(count):
            stride = 2 if b == 0 and stage > 0 else 1
            if f"blocks.{j}.conv2.conv.weight" in a:  # bottleneck: the 3x3 strides
                y = conv_bn(x, f"blocks.{j}.conv0")
                y = conv_bn(y, f"blocks.{j}.conv1", stride)
                y = conv_bn(y, f"blocks.{j}.conv2", relu=False)
            else:
                y = conv_bn(x, f"blocks.{j}.conv0", stride)
                y = conv_bn(y, f"blocks.{j}.conv1", relu=False)
            if b == 0:
                first = stage == 0 or not vd  # vb, and vd's first stage: a strided 1x1
                x = conv_bn(x, f"blocks.{j}.short", stride if first else 1, False, not first)
            x, j = F.relu(x + y), j + 1
    x = x.mean((2, 3))
    return x @ a["fc.weight"] + a["fc.bias"]

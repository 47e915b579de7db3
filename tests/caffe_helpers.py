"""MSRA's Caffe ResNets for the tests, written and run without this package's reader.

``write_msra_caffemodel`` writes a ``.caffemodel`` in the layout of KaimingHe/deep-residual-
networks' files (the layer names, types and blob shapes of ResNet-50/101/152-deploy.prototxt,
with random values) through Google's protobuf library and a descriptor of caffe.proto's field
numbers, so the package's hand-written wire decoder is checked against the real encoder.
``caffe_forward`` runs such a file's blobs as Caffe computes them, layer by layer, in float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

_PACKED = {"packed": True}
# (message, [(field, number, type, label, message type, options)]), as in caffe.proto.
_MESSAGES = [
    ("BlobShape", [("dim", 1, "TYPE_INT64", "LABEL_REPEATED", None, _PACKED)]),
    (
        "BlobProto",
        [
            ("num", 1, "TYPE_INT32", "LABEL_OPTIONAL", None, None),
            ("channels", 2, "TYPE_INT32", "LABEL_OPTIONAL", None, None),
            ("height", 3, "TYPE_INT32", "LABEL_OPTIONAL", None, None),
            ("width", 4, "TYPE_INT32", "LABEL_OPTIONAL", None, None),
            ("data", 5, "TYPE_FLOAT", "LABEL_REPEATED", None, _PACKED),
            ("shape", 7, "TYPE_MESSAGE", "LABEL_OPTIONAL", ".caffe.BlobShape", None),
            ("double_data", 8, "TYPE_DOUBLE", "LABEL_REPEATED", None, _PACKED),
        ],
    ),
    (
        "LayerParameter",
        [
            ("name", 1, "TYPE_STRING", "LABEL_OPTIONAL", None, None),
            ("type", 2, "TYPE_STRING", "LABEL_OPTIONAL", None, None),
            ("bottom", 3, "TYPE_STRING", "LABEL_REPEATED", None, None),
            ("top", 4, "TYPE_STRING", "LABEL_REPEATED", None, None),
            ("blobs", 7, "TYPE_MESSAGE", "LABEL_REPEATED", ".caffe.BlobProto", None),
        ],
    ),
    ("V1LayerParameter", [("name", 4, "TYPE_STRING", "LABEL_OPTIONAL", None, None)]),
    (
        "NetParameter",
        [
            ("name", 1, "TYPE_STRING", "LABEL_OPTIONAL", None, None),
            ("layers", 2, "TYPE_MESSAGE", "LABEL_REPEATED", ".caffe.V1LayerParameter", None),
            ("layer", 100, "TYPE_MESSAGE", "LABEL_REPEATED", ".caffe.LayerParameter", None),
        ],
    ),
]
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_EPS = 1e-5  # Caffe's BatchNorm default


def net_parameter_class(packed: bool = True):
    """The ``caffe.NetParameter`` message class, built from the descriptor above (``packed``
    False: every repeated number written as a field of its own, as older writers may)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(
        name=f"caffe_subset_{packed}.proto", package="caffe", syntax="proto2"
    )
    for name, fields in _MESSAGES:
        message = proto.message_type.add(name=name)
        for field, number, kind, label, type_name, options in fields:
            added = message.field.add(
                name=field,
                number=number,
                type=descriptor_pb2.FieldDescriptorProto.Type.Value(kind),
                label=descriptor_pb2.FieldDescriptorProto.Label.Value(label),
            )
            if type_name:
                added.type_name = type_name
            if options:
                added.options.packed = packed
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe.NetParameter"))


def block_names(blocks: tuple[int, ...], numbered: bool) -> list[list[str]]:
    """MSRA's block names per stage: res2a, res2b, ... or, numbered (ResNet-101/152's long
    stages), res3a, res3b1, res3b2, ..."""
    return [
        [
            f"{stage}a" if i == 0 else (f"{stage}b{i}" if numbered else f"{stage}{chr(97 + i)}")
            for i in range(count)
        ]
        for stage, count in zip(range(2, 6), blocks)
    ]


def msra_blobs(
    blocks=(3, 4, 6, 3), bottleneck=True, numbered=False, conv1_bias=True, seed=0
) -> tuple[dict[str, list[np.ndarray]], list[tuple[str, str]]]:
    """Random blobs in MSRA's layer names, and every layer's (name, type) in the file's order."""
    rng = np.random.default_rng(seed)
    blobs: dict[str, list[np.ndarray]] = {}
    layers: list[tuple[str, str]] = []

    def conv_bn(conv: str, norm: str, scale: str, out: int, inp: int, k: int, bias=False):
        weight = rng.normal(0, math.sqrt(2 / (inp * k * k)), (out, inp, k, k))
        blobs[conv] = [weight] + ([rng.normal(0, 0.1, out)] if bias else [])
        factor = 999.98  # Caffe's running sum of 0.999-decay weights
        statistics = [rng.normal(0, 0.2, out) * factor, rng.uniform(0.5, 1.5, out) * factor]
        blobs[norm] = [*statistics, np.array([factor])]
        blobs[scale] = [rng.uniform(0.5, 1.5, out), rng.normal(0, 0.1, out)]
        layers.extend([(conv, "Convolution"), (norm, "BatchNorm"), (scale, "Scale")])

    conv_bn("conv1", "bn_conv1", "scale_conv1", 64, 3, 7, bias=conv1_bias)
    layers.extend([("conv1_relu", "ReLU"), ("pool1", "Pooling")])
    expansion, inp = (4, 64) if bottleneck else (1, 64)
    for stage, names in zip(range(4), block_names(blocks, numbered)):
        planes = 64 * 2**stage
        for i, name in enumerate(names):
            out = planes * expansion
            if i == 0 and inp != out:
                shortcut = (f"res{name}_branch1", f"bn{name}_branch1", f"scale{name}_branch1")
                conv_bn(*shortcut, out, inp, 1)
            shapes = (
                [("2a", planes, inp, 1), ("2b", planes, planes, 3), ("2c", out, planes, 1)]
                if bottleneck
                else [("2a", planes, inp, 3), ("2b", planes, planes, 3)]
            )
            for branch, o, n, k in shapes:
                suffix = f"{name}_branch{branch}"
                conv_bn(f"res{suffix}", f"bn{suffix}", f"scale{suffix}", o, n, k)
                if branch != shapes[-1][0]:
                    layers.append((f"res{suffix}_relu", "ReLU"))
            layers.extend([(f"res{name}", "Eltwise"), (f"res{name}_relu", "ReLU")])
            inp = out
    blobs["fc1000"] = [rng.normal(0, 0.01, (1000, inp)), rng.normal(0, 0.01, 1000)]
    layers.extend([("pool5", "Pooling"), ("fc1000", "InnerProduct"), ("prob", "Softmax")])
    # As Caffe stored them: float32.
    return {k: [v.astype(np.float32) for v in vs] for k, vs in blobs.items()}, layers


def write_caffemodel(path, blobs, layers, legacy_dims=False, double=False, packed=True) -> None:
    """``blobs`` as a ``.caffemodel``: each blob's ``shape`` (or, ``legacy_dims``, the old
    num/channels/height/width, an FC weight as 1x1xOxI) and its values as floats (``double``:
    doubles)."""
    net = net_parameter_class(packed)(name="ResNet-50")
    for name, kind in layers:
        layer = net.layer.add(name=name, type=kind, bottom=["in"], top=[name])
        for array in blobs.get(name, []):
            blob = layer.blobs.add()
            if legacy_dims:
                dims = (1,) * (4 - array.ndim) + array.shape
                blob.num, blob.channels, blob.height, blob.width = dims
            else:
                blob.shape.dim.extend(array.shape)
            values = array.ravel().tolist()
            (blob.double_data if double else blob.data).extend(values)
    path.write_bytes(net.SerializeToString())


def caffe_forward(blobs, x_bgr: torch.Tensor, bottleneck=True, stem_pad_value=None, ceil=True):
    """The net's logits for Caffe's input (BGR, 0-255, mean-subtracted), float64. ``stem_pad_value``
    (per channel): conv1's border filled with it instead of zeros; ``ceil=False``: the stem pools
    as Detectron's does (padded by 1, rounding down)."""
    b = {k: [torch.from_numpy(v.astype(np.float64)) for v in vs] for k, vs in blobs.items()}

    def conv_bn(x, conv, norm, scale, stride, pad):
        weight, *bias = b[conv]
        x = F.conv2d(x, weight, bias[0] if bias else None, stride, pad)
        mean, var, factor = b[norm]
        scale_factor = 0 if float(factor) == 0 else 1 / float(factor)
        x = (x - (mean * scale_factor).view(1, -1, 1, 1)) / torch.sqrt(
            (var * scale_factor).view(1, -1, 1, 1) + _EPS
        )
        gamma, beta = b[scale]
        return x * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)

    x, pad = x_bgr, 3
    if stem_pad_value is not None:
        channels = [F.pad(x[:, c : c + 1], (3,) * 4, value=v) for c, v in enumerate(stem_pad_value)]
        x, pad = torch.cat(channels, 1), 0
    x = F.relu(conv_bn(x, "conv1", "bn_conv1", "scale_conv1", 2, pad))
    # Caffe's pooling rounds up; Detectron's pads.
    x = F.max_pool2d(x, 3, 2, ceil_mode=True) if ceil else F.max_pool2d(x, 3, 2, padding=1)
    stage = 2
    while any(k.startswith(f"res{stage}a_") for k in b):
        names = sorted(
            {k.split("_")[0][3:] for k in b if k.startswith(f"res{stage}") and "_branch" in k},
            key=lambda n: (len(n) > 2, int(n[2:]) if n[2:].isdigit() else ord(n[1])),
        )
        for name in names:
            stride = 2 if stage > 2 and name.endswith("a") and len(name) == 2 else 1
            shortcut = x
            if f"res{name}_branch1" in b:
                projection = (f"res{name}_branch1", f"bn{name}_branch1", f"scale{name}_branch1")
                shortcut = conv_bn(x, *projection, stride, 0)
            branches = ["2a", "2b", "2c"] if bottleneck else ["2a", "2b"]
            for branch in branches:
                k = b[f"res{name}_branch{branch}"][0].shape[-1]
                s = stride if branch == "2a" else 1
                suffix = f"{name}_branch{branch}"
                x = conv_bn(x, f"res{suffix}", f"bn{suffix}", f"scale{suffix}", s, k // 2)
                if branch != branches[-1]:
                    x = F.relu(x)
            x = F.relu(x + shortcut)
        stage += 1
    x = x.mean(dim=(2, 3))  # pool5: a 7x7 average at 224, global here
    weight, bias = b["fc1000"]
    return x @ weight.T + bias


def detectron_arrays(blobs) -> dict[str, np.ndarray]:
    """MSRA's Caffe blobs as Detectron's R-50.pkl holds them: Caffe2 names, each BatchNorm +
    Scale folded into an affine per channel (``_bn_s``, ``_bn_b``; computed here in float64),
    conv1's bias kept as ``conv1_b``."""
    arrays = {}

    def affine(conv, norm, scale, name):
        weight, *bias = (v.astype(np.float64) for v in blobs[conv])
        mean, var, factor = (v.astype(np.float64) for v in blobs[norm])
        gamma, beta = (v.astype(np.float64) for v in blobs[scale])
        s = gamma / np.sqrt(var / factor + _EPS)
        arrays[f"{name}_w"] = blobs[conv][0]
        if bias:
            arrays[f"{name}_b"] = bias[0].astype(np.float32)
        arrays[f"{name}_bn_s"] = s.astype(np.float32)
        arrays[f"{name}_bn_b"] = (beta - s * mean / factor).astype(np.float32)

    affine("conv1", "bn_conv1", "scale_conv1", "conv1")
    arrays["res_conv1_bn_s"] = arrays.pop("conv1_bn_s")
    arrays["res_conv1_bn_b"] = arrays.pop("conv1_bn_b")
    for layer in blobs:
        if not (layer.startswith("res") and "_branch" in layer):
            continue
        name, branch = layer[3:].split("_branch")
        index = 0 if name[1:] == "a" else (int(name[2:]) if name[2:] else ord(name[1]) - 97)
        suffix = f"{name}_branch{branch}"
        affine(layer, f"bn{suffix}", f"scale{suffix}", f"res{name[0]}_{index}_branch{branch}")
    arrays["fc1000_w"], arrays["fc1000_b"] = blobs["fc1000"]
    return arrays

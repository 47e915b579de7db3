"""MXNet ``.params`` files written as ``mx.nd.save`` writes them, for tests without MXNet.

The V2 layout (MXNet 1.x) was checked byte for byte against a file MXNet 1.9.1 wrote: the list
magic 0x112 and a reserved word, the arrays (magic 0xF993FAC9, dense storage type, a uint32
rank and int64 sides, CPU context, type flag, values), then the names. V1 drops the storage
type; the layout before V1 has no magic and uint32 sides.
"""

from __future__ import annotations

import struct

import numpy as np

_FLAGS = {np.dtype("<f4"): 0, np.dtype("<f8"): 1, np.dtype("<f2"): 2, np.dtype("<i8"): 6}


def write_mxnet_params(path, arrays: dict[str, np.ndarray], version: int = 2) -> None:
    chunks = [struct.pack("<QQQ", 0x112, 0, len(arrays))]
    for array in arrays.values():
        array = np.ascontiguousarray(array)
        if version == 2:
            chunks.append(struct.pack("<Ii", 0xF993FAC9, 0))
        if version in (1, 2):
            if version == 1:
                chunks.append(struct.pack("<I", 0xF993FAC8))
            chunks.append(struct.pack(f"<I{array.ndim}q", array.ndim, *array.shape))
        else:
            chunks.append(struct.pack(f"<I{array.ndim}I", array.ndim, *array.shape))
        chunks.append(struct.pack("<iii", 1, 0, _FLAGS[array.dtype]))
        chunks.append(array.astype(array.dtype.newbyteorder("<")).tobytes())
    chunks.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        encoded = name.encode("utf-8")
        chunks.append(struct.pack("<Q", len(encoded)) + encoded)
    with open(path, "wb") as handle:
        handle.write(b"".join(chunks))


def gluon_arrays(model) -> dict[str, np.ndarray]:
    """The initializers of an ONNX model of ``gluon_helpers`` (Gluon's counted names)."""
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def structural_names(blocks, bottleneck: bool, prefix: str = "resnetv17_") -> dict[str, str]:
    """{counted name: the name ``save_parameters`` gives it} for Gluon's ResNetV1: features.0/1
    the stem conv and BatchNorm (2 ReLU, 3 max-pool), features.4.. the stages, each block's
    ``body`` (conv, BN, ReLU, ...) and ``downsample`` (conv, BN), ``output`` the dense layer."""
    bn = ("gamma", "beta", "running_mean", "running_var")
    names = {f"{prefix}conv0_weight": "features.0.weight"}
    names.update({f"{prefix}batchnorm0_{p}": f"features.1.{p}" for p in bn})
    names.update({f"{prefix}dense0_{p}": f"output.{p}" for p in ("weight", "bias")})
    cin, body = 64, 3 if bottleneck else 2
    widths = (256, 512, 1024, 2048) if bottleneck else (64, 128, 256, 512)
    for stage, (count, cout) in enumerate(zip(blocks, widths), start=1):
        index, scope = 0, f"{prefix}stage{stage}_"
        for block in range(count):
            layers = [(f"body.{3 * i}", f"body.{3 * i + 1}") for i in range(body)]
            if block == 0 and cin != cout:
                layers.append(("downsample.0", "downsample.1"))
            for conv, norm in layers:
                ours = f"features.{3 + stage}.{block}."
                names[f"{scope}conv{index}_weight"] = ours + conv + ".weight"
                names[f"{scope}conv{index}_bias"] = ours + conv + ".bias"
                names.update({f"{scope}batchnorm{index}_{p}": f"{ours}{norm}.{p}" for p in bn})
                index += 1
            cin = cout
    return names


def structural_names_v2(blocks, bottleneck: bool, prefix: str = "resnetv24_") -> dict[str, str]:
    """The same for Gluon's ResNetV2: features.0 the input BatchNorm, 1/2 the stem conv and its
    BatchNorm (3 ReLU, 4 max-pool), features.5.. the stages, whose blocks name their layers
    ``bn1``, ``conv1``, ... and ``downsample``, then the final BatchNorm; ``output``."""
    bn = ("gamma", "beta", "running_mean", "running_var")
    names = {f"{prefix}batchnorm0_{p}": f"features.0.{p}" for p in bn}
    names[f"{prefix}conv0_weight"] = "features.1.weight"
    names.update({f"{prefix}batchnorm1_{p}": f"features.2.{p}" for p in bn})
    names.update({f"{prefix}batchnorm2_{p}": f"features.{5 + len(blocks)}.{p}" for p in bn})
    names.update({f"{prefix}dense0_{p}": f"output.{p}" for p in ("weight", "bias")})
    cin, body = 64, 3 if bottleneck else 2
    widths = (256, 512, 1024, 2048) if bottleneck else (64, 128, 256, 512)
    for stage, (count, cout) in enumerate(zip(blocks, widths), start=1):
        conv, scope = 0, f"{prefix}stage{stage}_"
        for block in range(count):
            ours = f"features.{4 + stage}.{block}."
            for i in range(body):
                names.update({f"{scope}batchnorm{block * body + i}_{p}": f"{ours}bn{i + 1}.{p}"
                              for p in bn})  # fmt: skip
                names[f"{scope}conv{conv + i}_weight"] = f"{ours}conv{i + 1}.weight"
            conv += body
            if block == 0 and cin != cout:
                names[f"{scope}conv{conv}_weight"] = f"{ours}downsample.weight"
                conv += 1
            cin = cout
    return names

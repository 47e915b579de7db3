"""Convolutions on tiny feature maps: oneDNN against the engine's im2col + matmul kernel.

    python bench/small_map_conv.py [--dtype bf16|fp32] [--repeats 10]

ResNet-18 at 64x64 runs its last stage on 2x2 maps, ResNet-9 at 28x28 on 3x3. There oneDNN's
convolution (forward + backward for input and weight, channels_last) keeps the matrix units
mostly idle. ``resnet.engine.kernels.small_map_conv2d`` computes the same convolution as one
strided im2col view and matrix products. This prints, for the convolutions of those networks'
last stages (and a few larger maps, where oneDNN wins), the time of both and the ratio,
measured in the same run, and whether the engine's rule (output of at most 4x4) picks the
kernel. A benchmark, not a test: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from resnet.device import cpu_capabilities
from resnet.engine.kernels import small_map_conv2d, takes_small_map

# (network, batch, in channels, out channels, input side, stride)
SHAPES = (
    ("resnet18@64 layer4", 64, 512, 512, 2, 1),
    ("resnet18@64 layer4.0", 64, 256, 512, 4, 2),
    ("resnet18@64 layer3", 64, 256, 256, 4, 1),
    ("resnet18@64 layer3.0", 64, 128, 256, 8, 2),
    ("resnet18@64 layer2", 64, 128, 128, 8, 1),
    ("resnet9_slim@28 layer3", 256, 256, 256, 3, 1),
    ("resnet9_slim@28 layer3.0", 256, 128, 256, 7, 1),
    ("resnet20@28 layer3", 256, 64, 64, 7, 1),
)


def _time_ms(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def _compare(label, batch, c_in, c_out, side, stride, dtype, repeats) -> None:
    x = torch.randn(batch, c_in, side, side, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(c_out, c_in, 3, 3, dtype=dtype).requires_grad_()
    out_side = (side - 1) // stride + 1
    grad = torch.randn(batch, c_out, out_side, out_side, dtype=dtype)

    def onednn() -> None:
        torch.autograd.grad(F.conv2d(x, w, None, stride, 1), (x, w), grad)

    def kernel() -> None:
        torch.autograd.grad(small_map_conv2d(x, w, None, stride, 1), (x, w), grad)

    base, ours = _time_ms(onednn, repeats), _time_ms(kernel, repeats)
    picked = "kernel" if takes_small_map(x, w, stride, 1) else "oneDNN"
    print(
        f"{label:<26} {batch}x{c_in}->{c_out} {side}x{side}/s{stride}: oneDNN fwd+bwd "
        f"{base:7.1f} ms   kernel {ours:7.1f} ms   ratio {base / ours:5.2f}x   engine: {picked}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    caps = cpu_capabilities()
    print(
        f"CPU: {caps['name']} | AMX {caps['amx']} | AVX512-BF16 {caps['avx512_bf16']} | "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads | {args.dtype}"
    )
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    for shape in SHAPES:
        _compare(*shape, dtype, args.repeats)


if __name__ == "__main__":
    main()

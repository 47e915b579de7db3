"""3x3 convolutions on tiny feature maps: oneDNN against unfold + one matrix multiply.

    python bench/small_map_conv.py [--batch 64] [--dtype bf16|fp32]

ResNet-18 at 64x64 runs its last stage on 2x2 maps. There oneDNN's convolution (forward +
backward for input and weight, channels_last) reaches a small fraction of the matrix units'
speed, and it is most of the training step (torch.profiler, bf16, batch 64). The same
convolution written as unfold (im2col) + one matmul keeps the matrix units busy. This prints,
for the 3x3 shapes of ResNet-18's stages at 64x64, the time of both and the ratio, measured in
the same run: where the ratio is above 1 a shape-picked kernel would pay. A benchmark, not a
test: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from resnet.device import cpu_capabilities


def _time_ms(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def _compare(batch: int, channels: int, side: int, dtype: torch.dtype, repeats: int) -> None:
    x = torch.randn(batch, channels, side, side, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(channels, channels, 3, 3, dtype=dtype).requires_grad_()
    grad = torch.randn_like(x)

    def onednn() -> None:
        torch.autograd.grad(F.conv2d(x, w, padding=1), (x, w), grad)

    def unfold_matmul() -> None:
        cols = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, channels * 9)
        y = (cols @ w.reshape(channels, -1).t()).reshape(batch, side * side, channels)
        y = y.permute(0, 2, 1).reshape(batch, channels, side, side)
        torch.autograd.grad(y, (x, w), grad)

    with torch.no_grad():  # the two are the same convolution
        cols = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, channels * 9).float()
        ref = F.conv2d(x.float(), w.float(), padding=1)
        mine = (cols @ w.float().reshape(channels, -1).t()).reshape(batch, side * side, channels)
        err = (mine.permute(0, 2, 1).reshape_as(ref) - ref).abs().max().item()
    base, ours = _time_ms(onednn, repeats), _time_ms(unfold_matmul, repeats)
    print(
        f"{batch}x{channels}x{side}x{side}: oneDNN fwd+bwd {base:7.1f} ms   unfold+matmul "
        f"{ours:7.1f} ms   ratio {base / ours:5.2f}x   (max diff {err:.1e})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    caps = cpu_capabilities()
    print(
        f"CPU: {caps['name']} | AMX {caps['amx']} | AVX512-BF16 {caps['avx512_bf16']} | "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads | {args.dtype}"
    )
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    for channels, side in ((512, 2), (256, 4), (128, 8), (64, 16)):
        _compare(args.batch, channels, side, dtype, args.repeats)


if __name__ == "__main__":
    main()

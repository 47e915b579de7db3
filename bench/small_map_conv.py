"""Convolutions on tiny feature maps: oneDNN against the engine's im2col + matmul kernel.

    python bench/small_map_conv.py [--dtype bf16|fp32] [--repeats 10] [--steps]

ResNet-18 at 64x64 runs its last stage on 2x2 maps, ResNet-9 at 28x28 on 3x3, a 3D ResNet-18 at
32x32x32 on 2x2x2. There oneDNN's convolution (forward + backward for input and weight,
channels last) keeps the matrix units mostly idle. ``resnet.engine.kernels.small_map_conv``
computes the same convolution as one strided im2col view and matrix products. This prints, for
the convolutions of those networks' last stages (and a few larger maps, where oneDNN wins), the
time of both and the ratio, measured in the same run, and whether the engine's rule (outputs of
at most 16 positions in bf16 on a CPU with AMX, 8 otherwise) picks the kernel. A benchmark, not
a test: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from resnet.cli.arguments import count
from resnet.engine.kernels import small_map_conv, takes_small_map

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak import machine_header, timed, training_step  # noqa: E402

# (network, batch, in channels, out channels, input size, stride)
SHAPES = (
    ("resnet18@64 layer4", 64, 512, 512, (2, 2), 1),
    ("resnet18@64 layer4.0", 64, 256, 512, (4, 4), 2),
    ("resnet18@64 layer3", 64, 256, 256, (4, 4), 1),
    ("resnet18@64 layer3.0", 64, 128, 256, (8, 8), 2),
    ("resnet18@64 layer2", 64, 128, 128, (8, 8), 1),
    ("resnet9_slim@28 layer3", 256, 256, 256, (3, 3), 1),
    ("resnet9_slim@28 layer3.0", 256, 128, 256, (7, 7), 1),
    ("resnet20@28 layer3", 256, 64, 64, (7, 7), 1),
    ("resnet18_3d@32 layer4", 8, 512, 512, (2, 2, 2), 1),
    ("resnet18_3d@32 layer4.0", 8, 256, 512, (4, 4, 4), 2),
    ("resnet18_3d@32 layer3", 8, 256, 256, (4, 4, 4), 1),
)


def _compare(label, batch, c_in, c_out, size, stride, dtype, repeats) -> None:
    layout = torch.channels_last if len(size) == 2 else torch.channels_last_3d
    x = torch.randn(batch, c_in, *size, dtype=dtype)
    x = x.contiguous(memory_format=layout).requires_grad_()
    w = torch.randn(c_out, c_in, *(3,) * len(size), dtype=dtype).requires_grad_()
    conv = F.conv2d if len(size) == 2 else F.conv3d
    grad = torch.randn(batch, c_out, *((n - 1) // stride + 1 for n in size), dtype=dtype)

    def onednn() -> None:
        torch.autograd.grad(conv(x, w, None, stride, 1), (x, w), grad)

    def kernel() -> None:
        torch.autograd.grad(small_map_conv(x, w, None, stride, 1), (x, w), grad)

    base, ours = (timed(fn, warmup=2, repeat=repeats) * 1e3 for fn in (onednn, kernel))
    picked = "kernel" if takes_small_map(x, w, stride, 1) else "oneDNN"
    print(
        f"{label:<26} {batch}x{c_in}->{c_out} {'x'.join(map(str, size))}/s{stride}: oneDNN fwd+bwd "
        f"{base:7.1f} ms   kernel {ours:7.1f} ms   ratio {base / ours:5.2f}x   engine: {picked}",
        flush=True,
    )


def _step_rate(name: str, size: tuple[int, ...], batch: int, amp: str, kernels: str) -> float:
    """Samples per second of full training steps (forward, loss, backward, SGD) of ``name`` on
    random (batch, 1, *size) inputs, in the engine's StepContext."""
    from resnet.engine.setup import StepContext
    from resnet.models import create_model

    torch.manual_seed(0)
    layout = torch.channels_last if len(size) == 2 else torch.channels_last_3d
    model = create_model(name, num_classes=10, in_chans=1).to(memory_format=layout)
    x = torch.randn(batch, 1, *size).contiguous(memory_format=layout)
    step = training_step(model, x, StepContext(amp, kernels, torch.device("cpu")))
    return batch / timed(step, warmup=2, repeat=5)


def _steps(dtype: str) -> None:
    amp = "bf16" if dtype == "bf16" else "off"
    for name, size, batch in (("resnet18", (64, 64), 64), ("resnet18_3d", (32, 32, 32), 8)):
        native = _step_rate(name, size, batch, amp, "native")
        engine = _step_rate(name, size, batch, amp, "auto")
        where = "x".join(map(str, size))
        print(
            f"{name}@{where} batch {batch}, full training step: native {native:7.1f}/s   "
            f"engine (kernels) {engine:7.1f}/s   ratio {engine / native:5.2f}x",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--repeats", type=count(1), default=10)
    parser.add_argument("--steps", action="store_true", help="also whole training steps")
    args = parser.parse_args()
    print(machine_header(args.dtype), flush=True)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    for shape in SHAPES:
        _compare(*shape, dtype, args.repeats)
    if args.steps:
        _steps(args.dtype)


if __name__ == "__main__":
    from resnet.cli import one_line_errors

    sys.exit(one_line_errors(main, prog="bench/small_map_conv.py"))

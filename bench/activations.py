"""What each activation costs a training step: ReLU against the smooth ones ResNet9 can use.

    python bench/activations.py [--model resnet9_slim] [--batch 256] [--repeats 7]

A smooth activation (SiLU, GELU, hard-swish) trains a short run further than ReLU, but on a CPU
the passes between the convolutions are memory- and ALU-bound, so its price is paid every step.
This prints, for each activation of ``resnet.models.layers.ACTIVATIONS``: the time of its
forward + backward at every activation site of the network (the shapes recorded from a forward
pass, batch 256 of 28x28 images, channels last, in the engine's precision for this CPU), and the
whole training step of the network built with it, both as a ratio against ReLU measured in the
same run, repeats interleaved. A benchmark, not a test: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from resnet.cli.arguments import count
from resnet.device import resolve_precision
from resnet.engine.setup import StepContext
from resnet.models import create_model
from resnet.models.layers import ACTIVATIONS, activation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak import OtherLoad, machine_header, timed, training_step  # noqa: E402


def build(name: str, act: str, batch: int) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1, act_layer=act)
    x = torch.randn(batch, 1, 28, 28)
    if getattr(model, "whitened_stem", False):
        model.whiten_stem(x)
    return model.to(memory_format=torch.channels_last), x.contiguous(
        memory_format=torch.channels_last
    )


def activation_shapes(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Size]:
    """The input shape of every activation module, in the order a forward pass meets them."""
    kinds = tuple({type(activation(a)) for a in ACTIVATIONS})
    shapes: list[torch.Size] = []
    hooks = [
        m.register_forward_pre_hook(lambda _, args: shapes.append(args[0].shape))
        for m in model.modules()
        if isinstance(m, kinds)
    ]
    with torch.no_grad():
        model.eval()(x)
    for hook in hooks:
        hook.remove()
    return shapes


def site_seconds(act: str, shape: torch.Size, dtype: torch.dtype, repeats: int) -> float:
    """Forward + backward of ``act`` on one site's shape, less the same pass through a scale
    alone (a leaf in front of it, as BatchNorm is in the network)."""
    x = torch.randn(shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
    grad = torch.ones_like(x)
    scale = torch.ones(1, shape[1], 1, 1, dtype=dtype, requires_grad=True)
    module = activation(act)
    with_act = timed(lambda: torch.autograd.grad(module(x * scale), scale, grad), repeat=repeats)
    without = timed(lambda: torch.autograd.grad(x * scale, scale, grad), repeat=repeats)
    return with_act - without


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet9_slim", choices=("resnet9_slim", "resnet9"))
    parser.add_argument("--batch", type=count(1), default=256)
    parser.add_argument("--repeats", type=count(1), default=7)
    args = parser.parse_args(argv)
    amp = resolve_precision("auto", torch.device("cpu"))
    dtype = torch.bfloat16 if amp == "bf16" else torch.float32
    print(machine_header(f"{args.model}, batch {args.batch}, amp {amp}"), flush=True)
    others = OtherLoad()
    shapes = activation_shapes(*build(args.model, "relu", args.batch))
    print(f"{len(shapes)} activation sites, {sum(s.numel() for s in shapes) / 1e6:.1f}M values")
    context = StepContext(amp, "auto", torch.device("cpu"))
    acts, steps = {a: [] for a in ACTIVATIONS}, {a: [] for a in ACTIVATIONS}
    for _ in range(3):  # interleaved, so a drift of the machine touches every activation alike
        for act in ACTIVATIONS:
            acts[act].append(sum(site_seconds(act, s, dtype, args.repeats) for s in shapes))
            step = training_step(*build(args.model, act, args.batch), context)
            steps[act].append(timed(step, warmup=2, repeat=args.repeats))
    relu_act, relu_step = (statistics.median(d["relu"]) for d in (acts, steps))
    for act in ACTIVATIONS:
        a, s = statistics.median(acts[act]), statistics.median(steps[act])
        print(
            f"{act:9s}  activations {a * 1e3:6.2f} ms a step ({(a - relu_act) * 1e3:+6.2f} vs relu)"
            f"  whole step {s * 1e3:6.1f} ms = {s / relu_step:.3f}x relu's"
        )
    print(others.warning() or "no other load during the run", flush=True)


if __name__ == "__main__":
    from resnet.cli import one_line_errors

    sys.exit(one_line_errors(main, prog="bench/activations.py"))

"""What Muon costs per training step: the full step and the update alone, Muon against SGD.

    python bench/optimizer_step.py                      # resnet9_slim and resnet20, batch 256
    python bench/optimizer_step.py --models resnet9_slim --batch 512

Each model trains on Fashion-MNIST-sized inputs (1x28x28) in the engine's StepContext, at the
precision ``amp: auto`` picks on this CPU (bf16 where it has native units, else float32); the
optimizer is built as ``resnet train`` builds it (``build_run_optimizer``) for ``optimizer: sgd``
and ``optimizer: muon``, so Muon orthogonalises in bf16 where the run trains in it. Printed:
median seconds of the full step and of ``optimizer.step()`` alone, and the ratio Muon / SGD,
both measured in this run. A benchmark, not a test: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak import OtherLoad, machine_header  # noqa: E402

from resnet.cli.arguments import count  # noqa: E402
from resnet.device import resolve_precision  # noqa: E402
from resnet.engine.budget import median_seconds, training_step  # noqa: E402
from resnet.engine.config import TrainConfig  # noqa: E402
from resnet.engine.setup import StepContext  # noqa: E402
from resnet.engine.train import build_run_optimizer  # noqa: E402
from resnet.models import create_model, model_entry  # noqa: E402

META = SimpleNamespace(channels=1, image_size=(28, 28))


def measure(name: str, optimizer: str, batch: int, precision: str) -> tuple[float, float]:
    """(full step, optimizer.step() alone) median seconds for ``name`` under ``optimizer``."""
    torch.manual_seed(0)
    cfg = TrainConfig(model=name, optimizer=optimizer, amp=precision, lr=0.4, nesterov=True,
                      weight_decay=5e-4, no_wd_norm_bias=True)  # fmt: skip
    model = create_model(name, num_classes=10, in_chans=1).to(memory_format=torch.channels_last)
    x = torch.randn(batch, 1, 28, 28).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    opt = build_run_optimizer(cfg, model, META)
    context = StepContext(precision, "auto", torch.device("cpu"))
    step = median_seconds(training_step(model, x, y, context, opt), warmup=2, repeat=8)
    update = median_seconds(opt.step, warmup=1, repeat=8)  # the gradients of the last step
    return step, update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet9_slim", "resnet20"])
    parser.add_argument("--batch", type=count(1), default=256)
    args = parser.parse_args()
    for name in args.models:  # a typo is refused before anything is measured
        model_entry(name)
    precision = resolve_precision("auto", torch.device("cpu"))
    print(machine_header(f"{precision}, batch {args.batch}"), flush=True)
    others = OtherLoad()
    print(f"{'model':<14} {'':<6} {'step ms':>9} {'update ms':>10}")
    for name in args.models:
        sgd = measure(name, "sgd", args.batch, precision)
        muon = measure(name, "muon", args.batch, precision)
        for label, (step, update) in (("sgd", sgd), ("muon", muon)):
            print(f"{name:<14} {label:<6} {1e3 * step:>9.1f} {1e3 * update:>10.2f}")
        print(
            f"{name:<14} muon/sgd: full step {muon[0] / sgd[0]:.3f}x, "
            f"update {muon[1] / sgd[1]:.1f}x ({1e3 * (muon[1] - sgd[1]):.1f} ms more)",
            flush=True,
        )
    print(others.warning() or "no other load during the run", flush=True)


if __name__ == "__main__":
    from resnet.cli import one_line_errors

    sys.exit(one_line_errors(main, prog="bench/optimizer_step.py"))

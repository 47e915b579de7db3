"""Time to accuracy: run a recipe with N seeds and report test accuracy against wall time.

    python bench/time_to_accuracy.py --recipe fashion-mnist-fast --seeds 3
    python bench/time_to_accuracy.py --recipe fashion-mnist-fast --seeds 1 --baseline

One line per seed (test accuracy, wall and CPU seconds from process start of the run to its
final number, including data loading, compilation and test-time augmentation, images/s of the
training steps, achieved training GFLOP/s and its fraction of the convolution peak measured
here in the precision the run trained in: bf16 where the CPU has it, else float32),
then the mean ± std. ``--baseline`` trains the same network for the same epochs through the
plain PyTorch pipeline people start from (a PIL dataset with torchvision transforms in a
DataLoader, float32, eager, SGD + OneCycleLR) and prints the ratio of wall times, measured in
the same run. A benchmark, not a test: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak import OtherLoad, conv_peak, machine_header  # noqa: E402

from resnet.cli.arguments import count  # noqa: E402
from resnet.engine.config import TrainConfig  # noqa: E402
from resnet.engine.setup import init_from_data  # noqa: E402
from resnet.engine.train import train  # noqa: E402
from resnet.models import create_model  # noqa: E402
from resnet.models.profile import count_gflops  # noqa: E402


def run_recipe(recipe: str, seed: int, runs: Path, overrides: dict) -> dict:
    cfg = TrainConfig.from_yaml(
        recipe,
        {
            **overrides,
            "seed": seed,
            "runs_dir": str(runs),
            "name": f"seed{seed}",
            "progress": False,
            "log_tensorboard": False,
        },
    )
    wall, cpu = time.perf_counter(), time.process_time()
    result = train(cfg)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    history = result.history
    images = [r["images_per_s"] for r in history]
    return {
        "seed": seed,
        "test_acc": result.metrics["test_acc"],
        "wall": wall,
        "cpu": cpu,
        "images_per_s": statistics.fmean(images[1:] or images),  # epoch 1 holds compilation
        "model": cfg.model,
        "model_kwargs": cfg.model_kwargs,
        "epochs": len(history),
        "amp": cfg.amp,
    }


def baseline(recipe: str, seed: int) -> dict:
    """The same network and epochs through torchvision's pipeline, float32, eager."""
    from train_throughput import baseline_loader

    from resnet.data import load_dataset

    cfg = TrainConfig.from_yaml(recipe)
    torch.manual_seed(seed)
    wall = time.perf_counter()
    data = load_dataset(cfg.dataset, "train")
    test = load_dataset(cfg.dataset, "test")
    model = create_model(cfg.model, num_classes=10, in_chans=1, **cfg.model_kwargs)
    loader = baseline_loader(data, cfg.batch_size, cfg.pad, workers=2)
    init_from_data(model, loader)  # a whitened stem, as resnet train computes it
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, cfg.lr, epochs=cfg.epochs, steps_per_epoch=len(loader)
    )
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    for _ in range(cfg.epochs):
        model.train()
        for x, y in loader:
            loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    mean, std = data.meta.mean[0], data.meta.std[0]
    with torch.no_grad():
        x = (test.images.float() / 255 - mean) / std
        correct = sum(
            int((model(x[i : i + 1000]).argmax(1) == test.labels[i : i + 1000]).sum())
            for i in range(0, len(x), 1000)
        )
    return {"test_acc": correct / len(x), "wall": time.perf_counter() - wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fashion-mnist-fast")
    parser.add_argument("--seeds", type=count(1), default=3)
    parser.add_argument("--first-seed", type=count(0), default=0)
    parser.add_argument("--baseline", action="store_true", help="also the torchvision pipeline")
    # Repeatable, as resnet train's: --set a=1 --set b=2 and --set a=1 b=2 both set both.
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    import yaml

    if bad := [item for item in args.set if "=" not in item]:
        parser.error(f"--set takes KEY=VALUE, got {bad[0]!r}")
    overrides = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    others = OtherLoad()
    print(machine_header(f"recipe {args.recipe} {overrides or ''}"), flush=True)
    peaks: dict[str, float] = {}  # measured after the first run in each precision
    rows = []
    with tempfile.TemporaryDirectory(prefix="tta-") as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            seed_load = OtherLoad()
            row = run_recipe(args.recipe, seed, Path(tmp), overrides)
            disturbed = seed_load.warning()
            precision = "bf16" if row["amp"] == "bf16" else "fp32"
            if precision not in peaks:
                peaks[precision] = conv_peak(precision)
                print(f"{precision} conv peak {peaks[precision]:,.0f} GFLOP/s", flush=True)
            model = create_model(row["model"], in_chans=1, **row["model_kwargs"])
            flops = 3 * 2 * count_gflops(model, (1, 28, 28)) * row["images_per_s"]
            row["fraction"] = flops / peaks[precision]
            row["precision"] = precision
            rows.append(row)
            print(
                f"seed {seed}: test acc {100 * row['test_acc']:.2f}%  wall {row['wall']:.1f} s  "
                f"cpu {row['cpu']:.1f} s  {row['images_per_s']:,.0f} img/s  "
                f"{flops:,.0f} GFLOP/s = {row['fraction']:.1%} of {precision} peak  "
                f"({row['model']}, {row['epochs']} epochs, amp {row['amp']})",
                flush=True,
            )
            if disturbed:
                print(f"seed {seed}: {disturbed}", flush=True)
    accs = [100 * r["test_acc"] for r in rows]
    walls = [r["wall"] for r in rows]
    spread = statistics.pstdev(accs) if len(accs) > 1 else 0.0
    print(
        f"mean: test acc {statistics.fmean(accs):.2f} ± {spread:.2f}%  wall "
        f"{statistics.fmean(walls):.1f} s (max {max(walls):.1f} s)  "
        f"{statistics.fmean(r['images_per_s'] for r in rows):,.0f} img/s  "
        f"{statistics.fmean(r['fraction'] for r in rows):.1%} of "
        f"{'/'.join(sorted({r['precision'] for r in rows}))} peak",
        flush=True,
    )
    # Before the baseline, whose DataLoader worker processes would count as other load.
    print(others.warning() or "no other load during the runs", flush=True)
    if args.baseline:
        base = baseline(args.recipe, args.first_seed)
        print(
            f"baseline (torchvision pipeline, float32 eager): test acc "
            f"{100 * base['test_acc']:.2f}%  wall {base['wall']:.1f} s  -> ours is "
            f"{base['wall'] / statistics.fmean(walls):.2f}x faster",
            flush=True,
        )


if __name__ == "__main__":
    from resnet.cli import one_line_errors

    sys.exit(one_line_errors(main, prog="bench/time_to_accuracy.py"))

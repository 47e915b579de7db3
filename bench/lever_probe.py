"""Probe training levers the engine does not have, on one recipe, before building any of them.

Each probe is one ``resnet.engine.train.train`` run of the recipe with one lever patched in for
that run only: CutMix or mixup in the classification loss, SAM (sharpness-aware minimisation)
around the optimizer step, or the dataset's images resized (bilinear) before training and test.
Levers the engine has (``ema``, ``model_kwargs``) go through ``--set`` as usual; so does the
resolution now (``--set image_size=N``, PIL's bilinear resize): the ``upsampleN`` probes, which
resize with PyTorch's bilinear (a grey level apart) and keep the 28-pixel statistics, are kept
because the README's GPU figures are theirs. SAM's extra forward pass also moves the BatchNorm
running statistics a second time (a probe, not an implementation). Probes run as
separate processes, ``--jobs`` at a time (on one GPU they share it); each prints and writes one
JSON line with its test accuracy, so a cut-off sweep keeps what finished.

    python bench/lever_probe.py --recipe fashion-mnist-best --device cuda:0 --jobs 8 \\
        --out results.jsonl control cutmix mixup sam upsample32 ema blocks111
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from resnet.cli.arguments import count

# name -> (what it patches, --set overrides)
PROBES = {
    "control": ("", {}),
    "ema": ("", {"ema": 0.999}),
    "blocks111": ("", {"model_kwargs": {"zero_init_residual": True, "whitened_stem": True,
                                        "blocks": [1, 1, 1]}}),
    "cutmix": ("cutmix", {}),
    "mixup": ("mixup", {}),
    "sam": ("sam", {}),
    **{f"upsample{side}": (f"upsample:{side}", {}) for side in (32, 36, 40, 48, 56)},
}  # fmt: skip


def _mix_loss(task, kind: str, generator: torch.Generator):
    """CutMix (p 0.5, alpha 1, Yun et al. 2019) or mixup (alpha 0.2, Zhang et al. 2018)."""
    from resnet.engine.classification import batch_sums

    plain = task.loss

    def loss(runner, batch):
        x, y = batch
        if kind == "cutmix" and torch.rand((), generator=generator) >= 0.5:
            return plain(runner, batch)
        alpha = 1.0 if kind == "cutmix" else 0.2
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
        if kind == "cutmix":
            h, w = x.shape[-2:]
            ch, cw = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
            cy, cx = (int(torch.randint(s, (), generator=generator)) for s in (h, w))
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            x = x.clone()
            x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
            lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
        else:
            x = lam * x + (1 - lam) * x[perm]
        logits = runner(x)
        loss = lam * task.criterion(logits.float(), y) + (1 - lam) * task.criterion(
            logits.float(), y[perm]
        )
        return loss, batch_sums(loss, logits, y)

    return loss


def _patch(kind: str) -> None:
    import resnet.engine.train as train_module

    generator = torch.Generator().manual_seed(1234)
    if kind in ("cutmix", "mixup"):
        original = train_module.ClassificationTask

        class Mixed(original):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.loss = _mix_loss(self, kind, generator)

        train_module.ClassificationTask = Mixed
    elif kind == "sam":
        _patch_sam(train_module, rho=0.05)


def _patch_sam(train_module, rho: float) -> None:
    """SAM (Foret et al. 2021): the gradient taken at w + rho g/|g|, the step applied at w."""
    task_class, build = train_module.ClassificationTask, train_module.build_run_optimizer
    shifts: list = []

    class Sharp(task_class):
        def loss(self, runner, batch):
            x, y = batch
            params = [p for p in self.model.parameters() if p.requires_grad]
            first = self.criterion(runner(x).float(), y)
            grads = torch.autograd.grad(first, params)
            norm = torch.norm(torch.stack([g.norm() for g in grads])) + 1e-12
            with torch.no_grad():
                for p, g in zip(params, grads):
                    e = g * (rho / norm)
                    p.add_(e)
                    shifts.append((p, e))
            return super().loss(runner, batch)

    def build_sharp(*args, **kwargs):
        optimizer = build(*args, **kwargs)
        step = optimizer.step

        def sharp_step(*a, **k):
            with torch.no_grad():
                for p, e in shifts:
                    p.sub_(e)
            shifts.clear()
            return step(*a, **k)

        optimizer.step = sharp_step
        return optimizer

    train_module.ClassificationTask = Sharp
    train_module.build_run_optimizer = build_sharp


def _resized(cfg, side: int) -> dict:
    from resnet.data import load_dataset

    out = {}
    for split in ("train", "test"):
        data = load_dataset(cfg.dataset, split, data_dir=cfg.data_dir, val_fraction=0.0)
        images = F.interpolate(data.images.float(), size=(side, side), mode="bilinear")
        images = images.round().clamp(0, 255).to(torch.uint8)
        meta = dataclasses.replace(data.meta, image_size=(side, side))
        out[split] = dataclasses.replace(data, images=images, meta=meta)
    return out


def run_one(args: argparse.Namespace) -> None:
    from resnet.engine.config import TrainConfig, recipe_path
    from resnet.engine.train import train

    patch, overrides = PROBES[args.probe]
    overrides = {**overrides, "device": args.device, "seed": args.seed, "progress": False,
                 "runs_dir": args.runs_dir, "name": f"{args.probe}-s{args.seed}"}  # fmt: skip
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    cfg = TrainConfig.from_yaml(recipe_path(args.recipe), overrides)
    datasets = None
    if patch.startswith("upsample:"):
        datasets = _resized(cfg, int(patch.split(":")[1]))
    elif patch:
        _patch(patch)
    started = time.perf_counter()
    result = train(cfg, datasets=datasets)
    row = {"probe": args.probe, "seed": args.seed, "test_acc": result.metrics.get("test_acc"),
           "train_acc": result.metrics.get("train_acc"),
           "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    print("RESULT " + json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("probes", nargs="*", help=f"of {', '.join(PROBES)} (default: all)")
    parser.add_argument("--recipe", default="fashion-mnist-best")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1")
    parser.add_argument("--jobs", type=count(1, 64), default=1, help="probes run at once")
    parser.add_argument("--set", action="append", default=[], help="KEY=JSON for every probe")
    parser.add_argument("--runs-dir", default="runs/probes")
    parser.add_argument("--out", default=None, help="append each result as a JSON line here")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=count(0), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return run_one(args)
    probes = args.probes or list(PROBES)
    unknown = sorted(set(probes) - set(PROBES))
    if unknown:
        parser.error(f"unknown probe(s) {', '.join(unknown)}; known: {', '.join(PROBES)}")
    try:
        seeds = [count(0)(seed) for seed in args.seeds.split(",")]
    except argparse.ArgumentTypeError as error:
        parser.error(f"--seeds: {error}")
    queue = [(p, seed) for seed in seeds for p in probes]
    running: list = []
    while queue or running:
        while queue and len(running) < args.jobs:
            probe, seed = queue.pop(0)
            command = [sys.executable, __file__, "--probe", probe, "--seed", str(seed),
                       "--recipe", args.recipe, "--device", args.device,
                       "--runs-dir", args.runs_dir] + [f"--set={s}" for s in args.set]  # fmt: skip
            log = Path(args.runs_dir) / f"{probe}-s{seed}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            running.append(
                (
                    probe,
                    seed,
                    log,
                    subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT),
                )
            )
        for item in list(running):
            probe, seed, log, process = item
            if process.poll() is None:
                continue
            running.remove(item)
            lines = [ln for ln in log.read_text().splitlines() if ln.startswith("RESULT ")]
            text = (
                lines[-1][7:]
                if lines
                else json.dumps({"probe": probe, "seed": seed, "error": log.read_text()[-400:]})
            )
            print(text, flush=True)
            if args.out:
                with open(args.out, "a") as out:
                    out.write(text + "\n")
        time.sleep(1)


if __name__ == "__main__":
    main()

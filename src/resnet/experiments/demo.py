"""``resnet demo``: the whole ResNet story, measured end to end on real data, in one command.

The default budget finishes within about ten minutes on a 2-core CPU (Fashion-MNIST, a
training subset, a few epochs); ``full=True`` runs the longer, more convincing version and adds
the loss landscape. Every step prints its progress; the run folder ends up with one JSON and
one PNG per experiment, ``results.json`` and the reports ``report.md`` / ``report.ko.md``.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from resnet.checks import switches
from resnet.experiments.common import load_split, log, save_result
from resnet.run import Run

__all__ = ["DemoBudget", "SHORT_BUDGET", "FULL_BUDGET", "run_demo", "format_summary"]


@dataclass(frozen=True)
class DemoBudget:
    """How much of each experiment the demo runs."""

    gradflow_depth: int = 56
    gradflow_steps: int = 5  # SGD steps between the two gradient measurements
    # Figure 6's depths: the shallow end at 8 (n=1) trains in seconds, so three depths up to the
    # paper's 56 and two seeds fit the ten minutes; the paper's figure has 20, 32, 44, 56.
    depths: tuple[int, ...] = (8, 20, 56)
    seeds: tuple[int, ...] = (0, 1)  # two seeds: the verdicts compare gaps with their spread
    train_subset: Optional[int] = 4000  # first N Fashion-MNIST training images
    test_subset: Optional[int] = 1000  # first N test images, scored after every epoch
    epochs: int = 6
    batch_size: int = 64  # small batches: more steps for the same images
    # A quarter of the paper's 0.1 per 128 images. Measured on this budget (2 seeds, final
    # training error, resnet-8 -> resnet-56): at 0.05 per 64 images 15.1% -> 15.5%, at 0.025
    # 18.3% -> 11.9%. In 378 steps a deep ResNet only pulls ahead at the gentler rate, while
    # plain-56 stays far behind plain-8 at both (41.1% vs 14.6%; 32.6% vs 19.0%).
    lr: float = 0.025
    # Linear warmup, for every network alike: without it resnet56 blew up in its first epoch
    # at lr 0.1 in our short runs (the paper warms up ResNet-110 the same way, §4.2).
    warmup_epochs: float = 0.5
    # No augmentation: the claim is about how well each net fits the images it trains on, and
    # random crops on 28x28 images kept every net above 20% training error in this budget.
    augment: bool = False
    amp: str = "auto"  # one precision for every net: bf16 where the CPU has it natively
    curve_every: Optional[int] = 10  # training error every N iterations (the paper's x-axis)
    lesion_subset: int = 500  # test images per lesion evaluation (one per deleted block)
    landscape: bool = False
    landscape_points_1d: int = 21
    landscape_points_2d: int = 9
    landscape_subset: int = 300


# Measured on an idle 2-core CPU with native bfloat16 (see the README for the figure). On a CPU
# without it the demo trains in float32 on half the images, to stay near ten minutes; that
# budget, run in float32 on the same Xeon (2 seeds), still showed both halves: plain-56 78.1%
# vs plain-8 24.9% training error, resnet-56 14.9% vs resnet-8 23.0%.
SHORT_BUDGET = DemoBudget()
# Measured: 42 min on a 2-core CPU in float32 before the speed work. Four depths, two seeds,
# 10,000 images for 10 epochs, and the loss landscape.
FULL_BUDGET = DemoBudget(
    depths=(8, 20, 32, 44, 56),
    gradflow_steps=50,
    train_subset=10000,
    test_subset=2000,
    epochs=10,
    batch_size=128,
    lr=0.05,  # the short budget's rate per image
    warmup_epochs=1.0,
    lesion_subset=2000,
    landscape=True,
)


def _fit_to_machine(budget: DemoBudget, run: Run) -> DemoBudget:
    """The short budget is sized for native bfloat16; without it (float32, about half the
    speed) the degradation nets train on half the images."""
    from dataclasses import replace

    from resnet.device import resolve_precision

    if budget == SHORT_BUDGET and resolve_precision(budget.amp, run.device) == "off":
        return replace(budget, train_subset=SHORT_BUDGET.train_subset // 2)
    return budget


def _format_wall_time(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s"


def run_demo(
    *,
    out_dir: Union[str, Path, None] = None,
    runs_dir: Union[str, Path] = "runs",
    dataset: str = "fashion-mnist",
    data_dir: Optional[str] = None,
    device: str = "auto",
    seed: int = 0,
    full: bool = False,
    budget: Optional[DemoBudget] = None,
    progress: bool = True,
    command: str = "resnet demo",
    run: Optional[Run] = None,
) -> dict[str, Any]:
    """Run block, gradflow, degradation, lesion (and landscape with ``full``), write the
    figures, ``results.json`` and both reports into the run folder (``out_dir``, or a new
    ``runs/demo-N``), and return the results (plain data, with ``out_dir`` and ``reports``).

    The device is resolved (and a missing one refused) before anything runs; the data is
    loaded once and handed to every experiment.
    """
    switches(full=full)
    from resnet.experiments import plotting
    from resnet.experiments.block import format_block, run_block
    from resnet.experiments.gradflow import run_gradflow
    from resnet.experiments.report import write_reports

    budget = budget or (FULL_BUDGET if full else SHORT_BUDGET)
    if run is None:
        run = Run.open(device=device, runs_dir=runs_dir, name="demo", folder=out_dir)
    budget = _fit_to_machine(budget, run)
    started, cpu_started = time.perf_counter(), time.process_time()
    train_set = load_split(dataset, "train", data_dir=data_dir)
    test_set = load_split(dataset, "test", data_dir=data_dir)
    out = run.folder()
    steps = 5 if budget.landscape else 4
    results: dict[str, Any] = {"figures": {}}

    def stage(number: int, title: str) -> None:
        elapsed = _format_wall_time(time.perf_counter() - started)
        log(f"[{number}/{steps}] {title}  (elapsed {elapsed})", enabled=progress)

    log(
        f"resnet demo -> {out} ({'full' if full else 'short'} budget, device {run.device})",
        enabled=progress,
    )
    stage(1, "one residual block: Y = F(X) + X")
    results["block"] = run_block(seed=seed)
    log(format_block(results["block"]), enabled=progress)
    _save(results, out, "block", plotting.plot_block)

    stage(2, f"gradient flow by depth (plain/resnet-{budget.gradflow_depth}, with/without BN)")
    results["gradflow"] = run_gradflow(
        train_set,
        depth=budget.gradflow_depth,
        steps=budget.gradflow_steps,
        batch_size=budget.batch_size,
        seed=seed,
        run=run,
        progress=progress,
    )
    _save(results, out, "gradflow", plotting.plot_gradflow)
    _measure_training(results, run, train_set, test_set, budget, seed, stage, progress)

    wall = time.perf_counter() - started
    results["meta"] = {
        "command": command,
        "dataset": dataset,
        "device": str(run.device),
        "seed": seed,
        "full": full,
        "wall_time": _format_wall_time(wall),
        "wall_seconds": round(wall, 1),
        # CPU time of all threads: on a shared machine it says what the run cost when the
        # wall time says mostly how busy the machine was.
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
    }
    reports = write_reports(results, out)
    save_result(out / "results.json", results)
    results["out_dir"] = str(out)
    results["reports"] = [str(p) for p in reports]
    log(format_summary(results), enabled=progress)
    log(f"reports: {reports[0]}  {reports[1]}", enabled=progress)
    return results


def _measure_training(results, run, train_set, test_set, budget, seed, stage, progress) -> None:
    """Degradation, then lesion (and landscape) of its deepest plain and residual nets."""
    from resnet.experiments import plotting
    from resnet.experiments.degradation import run_degradation
    from resnet.experiments.landscape import run_landscape
    from resnet.experiments.lesion import run_lesion

    out = run.folder()
    depths = ", ".join(str(d) for d in budget.depths)
    stage(3, f"degradation: training plain and residual nets of depth {depths}")
    test_subset = test_set.subset(budget.test_subset) if budget.test_subset else test_set
    results["degradation"] = run_degradation(
        dataset={"train": train_set, "test": test_subset},
        depths=budget.depths,
        seeds=tuple(seed + s for s in budget.seeds),
        train_subset=budget.train_subset,
        epochs=budget.epochs,
        batch_size=budget.batch_size,
        lr=budget.lr,
        warmup_epochs=budget.warmup_epochs,
        augment=budget.augment,
        amp=budget.amp,
        curve_every=budget.curve_every,
        run=run.child("degradation"),
        progress=progress,
    )
    results["degradation"]["recipe"]["test_subset"] = budget.test_subset
    _save(results, out, "degradation", plotting.plot_degradation)

    deep = max(budget.depths)
    summary = results["degradation"]["summary"]
    checkpoints = {
        f"{kind}-{deep}": summary[f"{kind}{deep}"]["last_checkpoints"][0]
        for kind in ("plain", "resnet")
    }
    # Lesion and landscape score the same test images the degradation curves used.
    stage(4, f"lesion: deleting one block at a time from plain-{deep} and resnet-{deep}")
    results["lesion"] = run_lesion(
        checkpoints, dataset=test_subset, eval_subset=budget.lesion_subset, run=run,
        progress=progress,
    )  # fmt: skip
    _save(results, out, "lesion", plotting.plot_lesion)

    if budget.landscape:
        stage(5, f"loss landscape around plain-{deep} and resnet-{deep}")
        results["landscape"] = run_landscape(
            checkpoints, dataset=test_subset, points_1d=budget.landscape_points_1d,
            points_2d=budget.landscape_points_2d, eval_subset=budget.landscape_subset,
            seed=seed, run=run, progress=progress,
        )  # fmt: skip
        _save(results, out, "landscape", plotting.plot_landscape)


def _save(results: dict, out: Path, name: str, plot: Any) -> None:
    save_result(out / f"{name}.json", results[name])
    figure = plot(results[name], out / f"{name}.png")
    results["figures"][name] = figure.name


def format_summary(results: dict) -> str:
    """The fixed-width table of every measured number, printed at the end of the demo."""
    from resnet.experiments.report import summary_rows

    rows = summary_rows(results)
    width = max(len(name) for name, _ in rows)
    lines = [f"{'measurement':<{width}}  value", "-" * (width + 30)]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    meta = results.get("meta", {})
    lines.append(
        f"wall time {meta.get('wall_time', '?')} ({meta.get('cpu_seconds', '?')} s of CPU time) "
        f"on {meta.get('device', '?')}"
    )
    return "\n".join(lines)

"""A time budget: as many training steps as fit in ``time_budget`` seconds on this machine.

The same recipe runs 6-8x slower on a CPU without bfloat16 units (a 2-core AVX2 EPYC trains
resnet9_slim at ~220 img/s in float32, a 2-core Xeon with AMX at ~1,800 in bfloat16), so a
recipe sized by steps for one machine takes a quarter of an hour on the other. With
``time_budget: SECONDS`` (ultralytics' ``time=`` does the same in hours) the run is sized by
the clock instead: before the first step, a copy of the model trains a few steps on the first
batch and scores it, and the run gets the largest step count whose steps, per-epoch scoring and
final test fit in what is left of the budget (from the start of the run, data loading
included), less a 10% margin. The schedule shrinks with it: one-cycle's warmup keeps its share
of the run.

The plan is made once and written into the run's config (``max_steps``, ``warmup_epochs``), so
the run itself is as deterministic as any other, and rerunning its ``config.yaml`` repeats it
bitwise on any machine. The copy leaves the model, the optimizer and the random state as they
were.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from resnet.errors import ConfigError

__all__ = [
    "BudgetPlan",
    "StepTimes",
    "measure_step_times",
    "median_seconds",
    "plan_steps",
    "process_started",
    "training_step",
]

# Of the remaining budget, kept for the machine's own drift (a 2-core EPYC ran the same steps
# up to 9% slower than its calibration had measured) and for epoch-end checkpoints.
MARGIN = 0.10
TIMED_STEPS = 4  # after one untimed step, which builds oneDNN's primitives


@dataclass
class StepTimes:
    """What one training step and one scored image cost on this machine."""

    step_seconds: float  # forward, loss, backward and the optimizer's update of one batch
    forward_seconds_per_image: float  # scoring (eval mode, no gradients)


@dataclass
class BudgetPlan:
    """The outcome of planning: the run's step count and the times it was planned from."""

    total_steps: int
    times: StepTimes
    remaining_seconds: float  # of the budget, when the plan was made


def measure_step_times(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    context,
    steps: int = TIMED_STEPS,
    optimizer_for=None,
) -> StepTimes:
    """Time training steps and a scoring pass of a copy of ``model`` on ``batch`` (x, y) in
    ``context`` (the run's StepContext: precision and kernels). The median of ``steps`` timed
    steps after an untimed one. ``optimizer_for(copy)`` builds the run's optimizer for the copy
    (None: SGD). ``model`` and the global random state are left unchanged."""
    rng = torch.get_rng_state()
    trial = copy.deepcopy(model)
    trial.train()
    x, y = batch

    def score() -> None:
        with torch.no_grad(), context:
            trial(x)

    try:
        optimizer = optimizer_for(trial) if optimizer_for is not None else None
        step = training_step(trial, x, y, context, optimizer)
        step_seconds = median_seconds(step, repeat=steps)
        trial.eval()
        forward_seconds = median_seconds(score, repeat=steps)
    finally:
        torch.set_rng_state(rng)
    return StepTimes(step_seconds, forward_seconds / max(len(x), 1))


def training_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, context, optimizer=None):
    """A closure running one full training step of ``model`` on (``x``, ``y``) in ``context``
    (a StepContext): forward, cross-entropy, backward, update by ``optimizer`` (None: SGD with
    momentum). It trains ``model``."""
    if optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, foreach=True)

    def step() -> None:
        with context:
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def median_seconds(fn, *, warmup: int = 1, repeat: int = TIMED_STEPS) -> float:
    """Median seconds of ``fn()`` over ``repeat`` calls after ``warmup`` untimed ones (oneDNN
    builds its primitives on the first call of each shape)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def plan_steps(
    budget: float,
    elapsed: float,
    times: StepTimes,
    *,
    steps_per_epoch: int,
    max_steps: int,
    epoch_eval_images: int,
    final_eval_images: int,
) -> BudgetPlan:
    """The most steps (at most ``max_steps``) whose training, the scoring of
    ``epoch_eval_images`` at every epoch end (the last, partial epoch's too) and the final
    scoring of ``final_eval_images`` fit in ``budget - elapsed`` seconds less the margin.
    ``ConfigError`` when not even one step fits."""
    remaining = (budget - elapsed) * (1 - MARGIN)
    per_image = times.forward_seconds_per_image
    available = remaining - final_eval_images * per_image

    def cost(steps: int) -> float:
        epochs = math.ceil(steps / steps_per_epoch)
        return steps * times.step_seconds + epochs * epoch_eval_images * per_image

    # cost() grows with steps: bisect for the last count that fits.
    fits, too_many = 0, min(max_steps, max(0, math.floor(available / times.step_seconds))) + 1
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        fits, too_many = (middle, too_many) if cost(middle) <= available else (fits, middle)
    steps = fits
    if steps < 1:
        scoring = (
            f" and scoring the {final_eval_images} final test images "
            f"{final_eval_images * per_image:.1f} s"
            if final_eval_images
            else ""
        )
        raise ConfigError(
            f"time_budget {budget:g} s leaves no time to train on this machine: setting up took "
            f"{elapsed:.1f} s, one step takes {times.step_seconds:.2f} s{scoring}; "
            "raise time_budget or use a smaller batch_size"
        )
    return BudgetPlan(steps, times, budget - elapsed)


def process_started() -> Optional[float]:
    """The ``time.perf_counter()`` reading at which this process started (Linux's /proc), so a
    command's budget also covers loading Python and torch (4-5 s); None where /proc is absent."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return time.perf_counter() - max(age, 0.0)

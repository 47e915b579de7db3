"""The one training loop: every task (classification, detection) plugs its batches, its loss and
its evaluation into ``fit``, which owns the schedule, precision, the NaN stop, checkpoints and
resume. It reads top to bottom like nanoGPT's train.py: set up, loop, evaluate, checkpoint.

A resume point (``last.state.pt``) is written at every epoch end and, with ``save_every_steps``,
inside epochs too. Because the loader's randomness is a function of (seed, epoch) and the RNG,
optimizer and EMA states are saved, a run killed at any moment resumes bitwise identically.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

import torch
from torch import nn

from resnet.engine.distributed import DistContext, all_reduce_max, all_reduce_sum
from resnet.engine.optim import ModelEma, lr_factor, set_lr
from resnet.errors import ConfigError, NonFiniteLossError, WeightsError
from resnet.models.pretrained import first_non_finite
from resnet.run import Run

__all__ = ["Task", "LoopSettings", "LoopState", "fit", "check_finite_weights", "check_work_left"]

CHECK_EVERY = 25  # steps between host syncs (progress bar, non-finite check)
STATE_FILE = "last.state.pt"


class Task(Protocol):
    """What a task gives the loop. ``sums`` are per-step tensors (on the device) that the loop
    adds up over an epoch without syncing with the host, e.g. (loss * n, correct, n)."""

    model: nn.Module  # the plain network being trained (checkpointed and evaluated)
    columns: Sequence[tuple[str, str, str]]  # the column log: (key, header, format)

    def steps_per_epoch(self) -> int: ...
    def batches(self, epoch: int) -> Iterable[Any]: ...
    def train_mode(self) -> None: ...
    def loss(self, runner: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]: ...
    def epoch_row(self, sums: torch.Tensor) -> dict[str, float]: ...
    def evaluate(self, model: nn.Module, epoch: int) -> dict[str, float]: ...
    def save(
        self, stem: Any, model: nn.Module, *, epoch: int, step: int, metrics: dict
    ) -> None: ...


@dataclass
class LoopSettings:
    """The parts of a recipe the loop itself uses."""

    epochs: int
    lr: float
    schedule: str = "cosine"
    max_steps: Optional[int] = None
    warmup_epochs: float = 0.0
    milestones: Sequence[float] = ()
    milestones_unit: str = "epochs"
    gamma: float = 0.1
    grad_clip: Optional[float] = None
    save_every_steps: Optional[int] = None  # also write the resume point inside epochs
    best_metric: Optional[str] = None  # row key to keep best.* by (higher is better); None: no best
    curve_every: Optional[int] = None  # also record the training row every N steps (curve.csv)
    progress: bool = True
    tensorboard: bool = False


@dataclass
class LoopState:
    """Where a run stands: what the resume point holds besides the weights."""

    epoch: int = 0  # the epoch in progress (0-based)
    step: int = 0  # optimizer steps taken
    batches_done: int = 0  # batches of ``epoch`` already trained (mid-epoch resume)
    sums: Optional[torch.Tensor] = None  # the epoch's partial sums at a mid-epoch resume point
    history: list = field(default_factory=list)
    curve: list = field(default_factory=list)  # training rows every curve_every steps
    best: float = float("-inf")


def check_finite_weights(model: nn.Module) -> None:
    """Raise ``NonFiniteLossError`` if a weight or buffer is NaN/inf: such a file is never
    written (the last step of an epoch can turn the weights NaN with a finite loss)."""
    name = first_non_finite(model.state_dict())
    if name is not None:
        raise NonFiniteLossError(
            f"{name} became NaN/inf; the checkpoint was not written and the last good one "
            "is kept; lower the learning rate or set grad_clip"
        )


def fit(
    run: Run,
    task: Task,
    optimizer: torch.optim.Optimizer,
    settings: LoopSettings,
    *,
    ctx: DistContext,
    runner: Optional[nn.Module] = None,
    ema: Optional[ModelEma] = None,
    context: Any = None,
    state: Optional[LoopState] = None,
) -> LoopState:
    """Train ``task.model`` for ``settings.epochs`` (or ``max_steps``); ``state`` is where a
    resumed run stands (``restore_state``, called before the run's settings are rewritten, so
    a resume point that does not fit leaves the run as it was). Returns where the run ended
    (its history, step, best)."""
    runner = runner if runner is not None else task.model
    context = context if context is not None else contextlib.nullcontext()
    loop = state if state is not None else LoopState()
    steps_per_epoch = task.steps_per_epoch()
    schedule = _schedule(settings, steps_per_epoch)
    for note in _schedule_notes(settings, schedule) if run.is_main else []:
        print(f"note: {note}", flush=True)
    log = run.column_log(task.columns, tensorboard=settings.tensorboard)
    eval_model = ema.module if ema is not None else task.model
    try:
        while loop.epoch < settings.epochs and loop.step < schedule["total_steps"]:
            started = time.perf_counter()
            sums = _train_epoch(run, task, optimizer, settings, schedule, loop, ctx, runner, ema,
                                context)  # fmt: skip
            all_reduce_sum(sums, ctx)
            row = {"epoch": loop.epoch + 1, "step": loop.step, **task.epoch_row(sums)}
            row["images_per_s"] = row.pop("images", 0.0) / max(time.perf_counter() - started, 1e-9)
            row.update(task.evaluate(eval_model, loop.epoch))
            row["lr"] = settings.lr * lr_factor(max(loop.step - 1, 0), **schedule)
            row["seconds"] = time.perf_counter() - started
            loop.history.append(row)
            loop.epoch, loop.batches_done, loop.sums = loop.epoch + 1, 0, None
            _checkpoint(run, task, optimizer, settings, loop, ema, row)
            if run.is_main:
                log.write(row, loop.history)
    except KeyboardInterrupt:
        raise run.interrupted() from None
    finally:
        log.close()
    return loop


def _schedule_notes(settings: LoopSettings, schedule: dict[str, Any]) -> list[str]:
    """Parts of the lr schedule the run will never reach, said before it starts."""
    notes = []
    if 0 < settings.epochs <= settings.warmup_epochs:
        notes.append(
            f"warmup_epochs {settings.warmup_epochs:g} is not shorter than the run's "
            f"{settings.epochs} epochs, so the lr rises until the run ends and never anneals; "
            "lower warmup_epochs (or raise epochs) for the whole schedule"
        )
    total = schedule["total_steps"]
    late = [m for m, step in zip(settings.milestones, schedule["milestones"]) if step >= total]
    if settings.schedule == "step" and late:
        notes.append(
            f"milestone(s) {', '.join(f'{m:g}' for m in late)} ({settings.milestones_unit}) lie "
            f"at or past the run's end (step {total}), so their lr drop never happens; lower "
            "them (or train longer) for the whole schedule"
        )
    return notes


def check_work_left(
    state: LoopState, settings: LoopSettings, steps_per_epoch: int, run_dir: Any
) -> None:
    """Refuse (``ConfigError``) to resume a run that has no step left to train: it would only
    rewrite the run's settings with ones (a new lr, say) that no step ever used."""
    total_steps = _schedule(settings, steps_per_epoch)["total_steps"]
    if state.epoch < settings.epochs and state.step < total_steps:
        return
    planned = f"epochs {settings.epochs}" + (
        f", max_steps {settings.max_steps}" if settings.max_steps is not None else ""
    )
    raise ConfigError(
        f"{run_dir} has trained all it was planned to ({planned}): epoch {state.epoch}, step "
        f"{state.step}; raise --epochs (or --max-steps) to train it further"
    )


def _schedule(settings: LoopSettings, steps_per_epoch: int) -> dict[str, Any]:
    total_steps = settings.epochs * steps_per_epoch
    if settings.max_steps is not None:
        total_steps = min(total_steps, settings.max_steps)
    scale = 1 if settings.milestones_unit == "steps" else steps_per_epoch
    return {
        "schedule": settings.schedule,
        "total_steps": total_steps,
        "warmup_steps": round(settings.warmup_epochs * steps_per_epoch),
        "milestones": [int(m * scale) for m in settings.milestones],
        "gamma": settings.gamma,
    }


def _train_epoch(run, task, optimizer, settings, schedule, loop, ctx, runner, ema, context):
    """One pass over the epoch's batches (skipping those a mid-epoch resume point has done)."""
    task.train_mode()
    sums = loop.sums
    window, windows = None, []  # the per-iteration curve: sums over each curve_every steps
    bad_step = torch.full((), -1, dtype=torch.int64, device=run.device)
    total = min(task.steps_per_epoch(), schedule["total_steps"] - loop.step + loop.batches_done)
    bar = _progress_bar(settings, run, loop.epoch, total)
    for index, batch in enumerate(task.batches(loop.epoch)):
        if index < loop.batches_done:
            continue  # done before the resume point; the loader's order is a function of epoch
        if loop.step >= schedule["total_steps"]:
            break
        lr = set_lr(optimizer, settings.lr, lr_factor(loop.step, **schedule))
        with context:
            loss, step_sums = task.loss(runner, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip is not None:
            nn.utils.clip_grad_norm_(task.model.parameters(), settings.grad_clip)
        optimizer.step()
        if ema is not None:
            ema.update(task.model)
        with torch.no_grad():  # statistics stay on the device: no host sync per step
            first_bad = (bad_step < 0) & ~torch.isfinite(loss.detach())
            bad_step.masked_fill_(first_bad, loop.step)
            step_sums = step_sums.detach().double()
            sums = step_sums.clone() if sums is None else sums + step_sums
            if settings.curve_every:
                window = step_sums.clone() if window is None else window + step_sums
        loop.step, loop.batches_done = loop.step + 1, index + 1
        if settings.curve_every and loop.step % settings.curve_every == 0:
            windows.append((loop.step, window))  # converted at the epoch end: no sync here
            window = None
        if loop.batches_done % CHECK_EVERY == 0 or loop.step >= schedule["total_steps"]:
            _check_finite(bad_step, ctx, loop.epoch, lr)
            if bar is not None:
                bar.update(loop.batches_done - bar.n)
        if settings.save_every_steps and loop.step % settings.save_every_steps == 0:
            _check_finite(bad_step, ctx, loop.epoch, lr)
            loop.sums = sums
            _flush_curve(task, loop, windows, ctx)
            if run.is_main:
                check_finite_weights(task.model)
                _write_state(run, task.model, optimizer, ema, loop)
    if bar is not None:
        bar.close()
    _check_finite(bad_step, ctx, loop.epoch, settings.lr)
    _flush_curve(task, loop, windows, ctx)
    if sums is None:
        raise NonFiniteLossError("an epoch had no batches; check the dataset and batch size")
    return sums


def _flush_curve(task, loop: LoopState, windows: list, ctx: DistContext) -> None:
    """Move the finished windows of the curve into ``loop.curve`` (one host sync)."""
    for step, window_sums in windows:
        loop.curve.append({"step": step, **task.epoch_row(all_reduce_sum(window_sums, ctx))})
    windows.clear()


def _checkpoint(run, task, optimizer, settings, loop, ema, row) -> None:
    """Epoch end: best (when the tracked metric improved), last, then the resume point."""
    if not run.is_main:
        return
    eval_model = ema.module if ema is not None else task.model
    check_finite_weights(task.model)
    check_finite_weights(eval_model)
    folder = run.folder()
    metrics = {k: v for k, v in row.items() if k not in ("epoch", "step")}
    key = settings.best_metric
    # Order: best, the resume point, last. A kill between any two resumes to the same files:
    # before the resume point, the epoch is trained again and best rewritten bitwise equal.
    if key is not None and row.get(key) is not None and row[key] > loop.best:
        loop.best = row[key]
        task.save(folder / "best", eval_model, epoch=loop.epoch, step=loop.step, metrics=metrics)
    _write_state(run, task.model, optimizer, ema, loop)
    task.save(folder / "last", eval_model, epoch=loop.epoch, step=loop.step, metrics=metrics)
    if loop.curve:
        _write_curve(folder / "curve.csv", loop.curve)


def _write_curve(path, curve: list[dict]) -> None:
    """The per-iteration training curve (the paper's Fig. 1 and 6 x-axis) as CSV."""
    import csv
    import io

    from resnet.io import atomic_write

    buffer = io.StringIO()
    table = csv.DictWriter(buffer, fieldnames=list(curve[0]), extrasaction="ignore")
    table.writeheader()
    table.writerows(curve)
    with atomic_write(path, "w") as handle:
        handle.write(buffer.getvalue())


def _write_state(run, model, optimizer, ema, loop: LoopState) -> None:
    """The resume point: one atomic file with the raw weights and everything else a bitwise
    continuation depends on, including the thread count (reductions split by thread)."""
    from resnet.io import atomic_write

    device = run.device
    state = {
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "ema": ema.module.state_dict() if ema is not None else None,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "epoch": loop.epoch,
        "step": loop.step,
        "batches_done": loop.batches_done,
        "sums": loop.sums.cpu() if loop.sums is not None else None,
        "history": loop.history,
        "curve": loop.curve,
        "best": loop.best,
        "num_threads": torch.get_num_threads(),
    }
    with atomic_write(run.folder() / STATE_FILE) as handle:
        torch.save(state, handle)


def read_state(run: Run) -> dict:
    """The resume point of ``run``'s folder, checked for what a resume needs."""
    path = run.dir / STATE_FILE if run.dir is not None else None
    if path is None or not path.is_file():
        raise WeightsError(
            f"{path}: no resume state; the run stopped before its first checkpoint, "
            "start it again without --resume"
        )
    try:
        # weights_only: the state holds tensors, numbers, strings and lists only.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle/zip errors come in many types
        raise WeightsError(
            f"{path}: unreadable resume state ({str(error)[:120]}); "
            "start the run again without --resume"
        ) from None
    needed = ("model", "optimizer", "rng_cpu", "epoch", "step", "history")
    missing = [key for key in needed if not isinstance(state, dict) or key not in state]
    if missing:
        raise WeightsError(
            f"{path}: resume state lacks {', '.join(missing)}; start the run again without --resume"
        )
    return state


def restore_state(state: dict, model, optimizer, ema, device: torch.device) -> LoopState:
    """Load a resume point into the model, optimizer and EMA; a mismatch is one WeightsError."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            if state.get("ema") is None:
                raise ValueError("the run had no EMA; drop the ema option")
            ema.module.load_state_dict(state["ema"])
    except (RuntimeError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()[0][:200]
        raise WeightsError(
            f"the resume state does not fit this model or optimizer ({first}); resume with the "
            "run's own settings (drop --model and options that change the network)"
        ) from None
    torch.set_rng_state(state["rng_cpu"])
    if device.type == "cuda" and state.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(state["rng_cuda"], device)
    saved_threads = state.get("num_threads")
    if saved_threads is not None and saved_threads != torch.get_num_threads():
        print(
            f"note: the run used {saved_threads} CPU threads and this process uses "
            f"{torch.get_num_threads()}; the resumed run will not be bitwise equal to an "
            "uninterrupted one (set num_threads to resume bitwise)",
            flush=True,
        )
    return LoopState(
        epoch=int(state["epoch"]),
        step=int(state["step"]),
        batches_done=int(state.get("batches_done", 0)),
        sums=state["sums"].to(device) if state.get("sums") is not None else None,
        history=list(state["history"]),
        curve=list(state.get("curve", [])),
        best=float(state.get("best", state.get("best_acc", float("-inf")))),
    )


def _check_finite(bad_step: torch.Tensor, ctx: DistContext, epoch: int, lr: float) -> None:
    # All processes reduce and raise together, so none waits forever in a collective.
    flag = all_reduce_max(bad_step.clone(), ctx)
    if int(flag) >= 0:
        raise NonFiniteLossError(
            f"loss became NaN/inf at step {int(flag)} (epoch {epoch + 1}, lr {lr:.3g}); "
            "lower the learning rate or set grad_clip; the last good checkpoint is kept"
        )


def _progress_bar(settings: LoopSettings, run: Run, epoch: int, total: int) -> Any:
    if not (settings.progress and run.is_main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"epoch {epoch + 1}/{settings.epochs}", leave=False, unit="step")

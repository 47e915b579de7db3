"""``train(config)``: one training run, from a recipe to ``runs/NAME/`` with best/last checkpoints.

The loop is the paper's (arXiv 1512.03385 sec. 3.4/4.2: SGD with momentum, weight decay, step
decay of the learning rate, crop+flip augmentation) with modern options (cosine/one-cycle,
label smoothing, EMA, bf16 autocast, DDP). This module sets a classification run up and plugs it
into the one loop of ``resnet.engine.loop``, which checkpoints and resumes bitwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from resnet.device import resolve_precision, resolve_threads
from resnet.engine.budget import measure_step_times, plan_steps
from resnet.engine.classification import ClassificationTask, final_metrics, scores_test_at_end
from resnet.engine.config import TrainConfig, resumed_config
from resnet.engine.distributed import (
    DistContext,
    all_reduce_max,
    broadcast,
    check_batch_split,
    init_distributed,
)
from resnet.engine.evaluate import check_tta_flip, check_tta_shift, tta_view_count
from resnet.engine.loop import LoopSettings, check_work_left, fit, read_state, restore_state
from resnet.engine.muon import Muon, scale_invariant_filters, split_filters
from resnet.engine.optim import ModelEma, build_optimizer, param_groups
from resnet.engine.setup import (
    RunData,
    StepContext,
    build_model,
    check_same_data,
    init_from_data,
    load_data,
    seed_everything,
)
from resnet.errors import ConfigError, NonFiniteLossError
from resnet.run import Run

__all__ = ["train", "TrainResult", "NonFiniteLossError", "ClassificationTask", "loop_settings"]


@dataclass
class TrainResult:
    """What a run produced."""

    run_dir: Optional[Path]
    best_checkpoint: Optional[Path]  # run_dir/best.safetensors: best on val, else the last
    last_checkpoint: Optional[Path]  # run_dir/last.safetensors
    history: list[dict] = field(default_factory=list)  # one row per epoch, as in metrics.csv
    curve: list[dict] = field(default_factory=list)  # every curve_every steps, as in curve.csv
    metrics: dict = field(default_factory=dict)  # final numbers, incl. test_acc
    config: Optional[TrainConfig] = None


def train(
    config: Union[TrainConfig, dict, None] = None,
    *,
    resume: Optional[Union[str, os.PathLike]] = None,
    run: Optional[Run] = None,
    datasets: Optional[dict[str, Any]] = None,
    started: Optional[float] = None,
) -> TrainResult:
    """Train a model as ``config`` says; with ``resume=run_dir`` continue that run.

    ``config`` may be a ``TrainConfig`` or a dict of its fields. With ``resume`` and a dict (or
    None), the run's saved ``config.yaml`` is used with the dict's fields as overrides (e.g.
    ``{"epochs": 30}`` to train longer). ``run`` is the command's opened run (default: one opened
    here from ``config.device``/``runs_dir``/``name``); ``datasets`` gives the splits in memory
    (``{"train": ..., "test": ..., "val": ...}``) instead of loading ``config.dataset``.
    ``started`` is the ``time.perf_counter()`` reading a ``time_budget`` counts from (default:
    now; the CLI passes its process's start).
    """
    started = time.perf_counter() if started is None else started
    cfg = _resolve_config(config, resume)
    if resume is not None and cfg.time_budget is not None:
        raise ConfigError(
            "time_budget sizes a new run; a resumed run keeps the max_steps it was planned "
            "with (raise epochs or max_steps to train longer)"
        )
    if run is None:
        run = (
            Run.resume(resume, device=cfg.device)
            if resume is not None
            else Run.open(
                device=cfg.device, runs_dir=cfg.runs_dir, name=cfg.name or default_name(cfg)
            )
        )
    context = init_distributed(run.device)
    previous_determinism = torch.are_deterministic_algorithms_enabled()
    previous_fill = torch.utils.deterministic.fill_uninitialized_memory
    try:
        return _train(
            cfg, run, context, resumed=resume is not None, datasets=datasets, started=started
        )
    finally:
        torch.use_deterministic_algorithms(previous_determinism)
        torch.utils.deterministic.fill_uninitialized_memory = previous_fill
        context.close()


def _resolve_config(
    config: Union[TrainConfig, dict, None], resume: Optional[Union[str, os.PathLike]]
) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    if resume is not None:
        saved = Path(resume) / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"{resume} holds no config.yaml; --resume needs a run directory")
        return resumed_config(saved, config or {})
    if isinstance(config, Mapping):
        config = dict(config)
    return TrainConfig.from_dict({} if config is None else config)  # it refuses non-mappings


def default_name(cfg: TrainConfig) -> str:
    """``<model>-<dataset>``, the dataset by its file or folder name when it is a path."""
    dataset = Path(cfg.dataset).stem if os.sep in cfg.dataset else cfg.dataset
    return f"{cfg.model}-{dataset}"


def loop_settings(cfg: TrainConfig, *, best_metric: Optional[str]) -> LoopSettings:
    """The loop's part of a training config."""
    return LoopSettings(
        epochs=cfg.epochs, lr=cfg.lr, schedule=cfg.schedule, max_steps=cfg.max_steps,
        warmup_epochs=cfg.warmup_epochs, milestones=cfg.milestones,
        milestones_unit=cfg.milestones_unit, gamma=cfg.gamma, grad_clip=cfg.grad_clip,
        save_every_steps=cfg.save_every_steps, best_metric=best_metric, progress=cfg.progress,
        curve_every=cfg.curve_every,
        tensorboard=cfg.log_tensorboard,
    )  # fmt: skip


def _train(
    cfg: TrainConfig,
    run: Run,
    ctx: DistContext,
    *,
    resumed: bool,
    datasets: Optional[dict],
    started: float,
) -> TrainResult:
    # Recorded as a number: a bitwise resume needs the same thread count.
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if ctx.distributed else 1
    cfg.num_threads = resolve_threads(cfg.num_threads, processes)
    cfg.amp = resolve_precision(cfg.amp, run.device)  # recorded: "auto" differs by machine
    seed_everything(cfg.seed, cfg.deterministic, cfg.num_threads)
    data = load_data(cfg, ctx, check_batch_split(cfg.batch_size, ctx), datasets)
    check_tta_shift(cfg.eval_tta_shift, data.meta.image_size[-1])  # before training, not after
    check_tta_flip(cfg.eval_tta, data.meta)
    log = print if ctx.is_main else (lambda _line: None)
    model, frozen = build_model(cfg, data.meta, run.device, sync_bn=ctx.distributed, log=log)
    if not resumed and cfg.pretrained is None:
        init_from_data(model, data.train_loader)  # before EMA and DDP copy the weights
    optimizer = build_run_optimizer(cfg, model, data.meta)
    ema = ModelEma(model, cfg.ema) if cfg.ema else None
    # Restored before config.yaml is rewritten: a resume point that does not fit the model or
    # optimizer (another optimizer given) fails with the run's own settings left in place.
    state = restore_state(read_state(run), model, optimizer, ema, run.device) if resumed else None
    if state is not None:
        check_same_data(run.dir, data.meta)
        check_work_left(
            state, loop_settings(cfg, best_metric=None), len(data.train_loader), run.dir
        )
    context = StepContext(cfg.amp, cfg.conv_kernels, run.device, compiled=cfg.compile)
    if cfg.time_budget is not None and not resumed:
        _plan_time_budget(cfg, data, model, optimizer, context, ctx, started)
    run.write_settings(cfg.to_dict())  # creates the run folder on the main process
    run.dir = broadcast(run.dir, ctx)
    runner = _runner(model, cfg, ctx, run.device)
    task = ClassificationTask(model, data, cfg, frozen, context)
    _print_header(cfg, data, run, ctx, context, optimizer)
    # best.* is the epoch the run picks: the best on validation where a split was held out.
    # Without one, the best on test would be a test score chosen on the test set (eval reported
    # it above the run's "final:"), so best is the latest epoch, the model "final:" scores.
    best_metric = "val_acc" if data.eval_split == "val" else "epoch"
    settings = loop_settings(cfg, best_metric=best_metric)
    loop = fit(run, task, optimizer, settings, ctx=ctx, runner=runner, ema=ema,
               context=context, state=state)  # fmt: skip
    eval_model = ema.module if ema is not None else model
    final = final_metrics(cfg, data, eval_model, loop.history, context)
    if run.is_main:
        from resnet.io import atomic_save_json

        atomic_save_json(run.dir / "results.json", final)
        print("final: " + "  ".join(f"{k} {v:.4f}" for k, v in final.items()), flush=True)
    return TrainResult(
        run_dir=run.dir,
        best_checkpoint=run.dir / "best.safetensors" if run.dir else None,
        last_checkpoint=run.dir / "last.safetensors" if run.dir else None,
        history=loop.history,
        curve=loop.curve,
        metrics=final,
        config=cfg,
    )


def build_run_optimizer(
    cfg: TrainConfig, model: nn.Module, meta, filters: Optional[set[str]] = None
) -> torch.optim.Optimizer:
    """The optimizer ``cfg`` names over ``model``'s parameter groups. Muon
    (``resnet.engine.muon``) takes the filter banks a normalisation follows (``filters``, by
    name; found on a small random batch of the dataset's shape when None), and orthogonalises
    in bf16 when the run trains in it."""
    groups = param_groups(
        model,
        weight_decay=cfg.weight_decay,
        no_wd_norm_bias=cfg.no_wd_norm_bias,
        backbone_lr_scale=cfg.backbone_lr_scale,
    )
    if cfg.optimizer != "muon":
        return build_optimizer(
            groups, cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov
        )
    if filters is None:
        filters = scale_invariant_filters(model, meta.channels, meta.image_size)
    return Muon(
        split_filters(model, groups, filters, muon_lr=cfg.muon_lr, lr=cfg.lr),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        muon_momentum=cfg.muon_momentum,
        ns_dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float32,
    )


def _plan_time_budget(
    cfg: TrainConfig, data: RunData, model, optimizer, context, ctx, started: float
) -> None:
    """Size the run to ``cfg.time_budget`` (``resnet.engine.budget``): set ``max_steps`` to the
    plan, shrink the warmup and milestones with it, and drop the budget, so that the written
    config.yaml repeats this run exactly. The budget's clock runs from ``started``. The trial
    steps use the run's optimizer, split as the run's is (Muon's filters are not found twice)."""
    filters = optimizer.filter_names(model) if isinstance(optimizer, Muon) else None
    data.train_loader.set_epoch(0)
    times = measure_step_times(
        model, next(iter(data.train_loader)), context,
        optimizer_for=lambda trial: build_run_optimizer(cfg, trial, data.meta, filters),
    )  # fmt: skip
    elapsed = time.perf_counter() - started  # the measuring included
    if ctx.distributed:  # every process plans from the slowest one's figures, so all agree
        figures = [times.step_seconds, times.forward_seconds_per_image, elapsed]
        slowest = all_reduce_max(torch.tensor(figures, device=ctx.device), ctx).tolist()
        times.step_seconds, times.forward_seconds_per_image, elapsed = slowest
    steps_per_epoch = len(data.train_loader)
    nominal = steps_per_epoch * cfg.epochs
    nominal = min(nominal, cfg.max_steps) if cfg.max_steps is not None else nominal
    final_images = 0
    if scores_test_at_end(cfg, data):
        views = tta_view_count(flip=cfg.eval_tta, shift=cfg.eval_tta_shift)
        final_images = data.test_loader.num_samples * views
    plan = plan_steps(
        cfg.time_budget, elapsed, times, steps_per_epoch=steps_per_epoch, max_steps=nominal,
        epoch_eval_images=data.eval_loader.num_samples, final_eval_images=final_images,
    )  # fmt: skip
    share = plan.total_steps / nominal
    if share < 1:
        cfg.warmup_epochs *= share
        cfg.milestones = [m * share if cfg.milestones_unit == "epochs" else round(m * share)
                          for m in cfg.milestones]  # fmt: skip
    budget, cfg.max_steps, cfg.time_budget = cfg.time_budget, plan.total_steps, None
    if ctx.is_main:
        scoring = 1e3 * times.forward_seconds_per_image
        print(
            f"time budget {budget:g} s: {plan.remaining_seconds:.1f} s left after setup, a "
            f"step takes {times.step_seconds:.3f} s, scoring {scoring:.2f} ms/image -> "
            f"{plan.total_steps} steps ({plan.total_steps / steps_per_epoch:.2f} "
            f"epochs, {share:.0%} of the recipe's {nominal}); max_steps {plan.total_steps}, "
            f"warmup_epochs {cfg.warmup_epochs:.4g} go into config.yaml",
            flush=True,
        )


def _runner(model: nn.Module, cfg: TrainConfig, ctx: DistContext, device) -> nn.Module:
    """The network that runs forward/backward: DDP and torch.compile wrap the plain model."""
    runner: nn.Module = model
    if ctx.distributed:
        runner = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        runner = torch.compile(runner)
    return runner


def _print_header(cfg: TrainConfig, data: RunData, run: Run, ctx: DistContext, context,
                  optimizer) -> None:  # fmt: skip
    if not run.is_main:
        return
    steps = len(data.train_loader) * cfg.epochs
    if cfg.max_steps is not None:
        steps = min(steps, cfg.max_steps)
    precision = "bfloat16 autocast" if context.precision == "bf16" else "float32"
    processes = f" x {ctx.world_size} processes" if ctx.distributed else ""
    plural = "" if cfg.num_threads == 1 else "s"
    threads = f" ({cfg.num_threads} thread{plural})" if run.device.type == "cpu" else ""
    print(
        f"{cfg.model} on {data.meta.name}: {data.num_train} train images, "
        f"{len(data.train_loader)} steps/epoch, {steps} step{'' if steps == 1 else 's'}, "
        f"device {run.device}{threads}, "
        f"{precision}{processes} -> {run.dir}",
        flush=True,
    )
    if isinstance(optimizer, Muon):
        print(optimizer.describe(), flush=True)

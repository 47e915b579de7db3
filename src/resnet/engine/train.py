"""``train(config)``: one training run, from a recipe to ``runs/NAME/`` with best/last checkpoints.

The loop is the paper's (arXiv 1512.03385 sec. 3.4/4.2: SGD with momentum, weight decay, step
decay of the learning rate, crop+flip augmentation) with modern options (cosine/one-cycle,
label smoothing, EMA, bf16 autocast, DDP). A run checkpoints at every epoch end; ``resume`` picks
it up bitwise identically on the CPU, because the loader's randomness is a function of
(seed, epoch) and the RNG, optimizer and EMA states are restored.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from resnet.engine.checkpoint import load_training_state, save_checkpoint
from resnet.engine.config import TrainConfig
from resnet.engine.distributed import (
    DistContext,
    all_reduce_max,
    all_reduce_sum,
    broadcast,
    check_batch_split,
    init_distributed,
)
from resnet.engine.evaluate import evaluate_loader
from resnet.engine.optim import (
    ModelEma,
    build_optimizer,
    lr_factor,
    param_groups,
    set_bn_eval,
    set_lr,
)
from resnet.engine.runlog import RunLog, next_run_dir
from resnet.engine.setup import autocast_context, build_model, load_data, seed_everything
from resnet.errors import ConfigError, ResnetError

__all__ = ["train", "TrainResult", "NonFiniteLossError"]

_CHECK_EVERY = 25  # steps between host syncs (progress bar, non-finite check)


class NonFiniteLossError(ResnetError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class TrainResult:
    """What a run produced."""

    run_dir: Optional[Path]
    best_checkpoint: Optional[Path]  # run_dir/best.safetensors
    last_checkpoint: Optional[Path]  # run_dir/last.safetensors
    history: list[dict] = field(default_factory=list)  # one row per epoch, as in metrics.csv
    metrics: dict = field(default_factory=dict)  # final numbers, incl. test_acc
    config: Optional[TrainConfig] = None


def _resolve_config(
    config: Union[TrainConfig, dict, None], resume: Optional[Union[str, os.PathLike]]
) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    if resume is not None:
        saved = Path(resume) / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"{resume} holds no config.yaml; --resume needs a run directory")
        return TrainConfig.from_yaml(saved, config or {})
    return TrainConfig.from_dict(dict(config or {}))


def train(
    config: Union[TrainConfig, dict, None] = None,
    *,
    resume: Optional[Union[str, os.PathLike]] = None,
) -> TrainResult:
    """Train a model as ``config`` says; with ``resume=run_dir`` continue that run.

    ``config`` may be a ``TrainConfig`` or a dict of its fields. With ``resume`` and a dict (or
    None), the run's saved ``config.yaml`` is used with the dict's fields as overrides (e.g.
    ``{"epochs": 30}`` to train longer).
    """
    cfg = _resolve_config(config, resume)
    context = init_distributed(cfg.device)
    previous_determinism = torch.are_deterministic_algorithms_enabled()
    try:
        return _train(cfg, context, resume)
    finally:
        torch.use_deterministic_algorithms(previous_determinism)
        context.close()


def _train(cfg: TrainConfig, ctx: DistContext, resume: Optional[Union[str, os.PathLike]]):
    import yaml

    from resnet.io import atomic_write

    device = ctx.device
    seed_everything(cfg.seed, cfg.deterministic, cfg.num_threads)
    data = load_data(cfg, ctx, check_batch_split(cfg.batch_size, ctx))
    model, frozen = build_model(cfg, data.meta, device)
    groups = param_groups(
        model,
        weight_decay=cfg.weight_decay,
        no_wd_norm_bias=cfg.no_wd_norm_bias,
        backbone_lr_scale=cfg.backbone_lr_scale,
    )
    optimizer = build_optimizer(
        groups, cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov
    )
    ema = ModelEma(model, cfg.ema) if cfg.ema else None

    steps_per_epoch = len(data.train_loader)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    schedule = {
        "schedule": cfg.schedule,
        "total_steps": total_steps,
        "warmup_steps": round(cfg.warmup_epochs * steps_per_epoch),
        "milestones": [
            int(m if cfg.milestones_unit == "steps" else m * steps_per_epoch)
            for m in cfg.milestones
        ],
        "gamma": cfg.gamma,
    }

    # Resume or start: the run directory, the step and the history so far.
    start_epoch, step, history, best_acc = 0, 0, [], -1.0
    if resume is not None:
        run_dir: Optional[Path] = Path(resume)
        state = load_training_state(run_dir)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.module.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        start_epoch, step = int(state["epoch"]), int(state["step"])
        history, best_acc = list(state["history"]), float(state["best_acc"])
    else:
        run_dir = None
        if ctx.is_main:
            run_dir = next_run_dir(cfg.runs_dir, cfg.name or _default_name(cfg))
        run_dir = broadcast(run_dir, ctx)
    if ctx.is_main:
        with atomic_write(run_dir / "config.yaml", "w") as handle:
            yaml.safe_dump(cfg.to_dict(), handle, sort_keys=False)

    # The network that runs forward/backward: DDP and torch.compile wrap the plain model.
    runner: nn.Module = model
    if ctx.distributed:
        runner = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        runner = torch.compile(runner)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    autocast = autocast_context(cfg.amp, device)
    log = RunLog(run_dir if ctx.is_main else None, data.eval_split, tensorboard=cfg.log_tensorboard)
    eval_model = ema.module if ema is not None else model
    if ctx.is_main:
        print(
            f"{cfg.model} on {data.meta.name}: {data.num_train} train images, "
            f"{steps_per_epoch} steps/epoch, {total_steps} steps, device {device}, "
            f"{'bfloat16 autocast' if isinstance(autocast, torch.autocast) else 'float32'}"
            f"{f' x {ctx.world_size} processes' if ctx.distributed else ''} -> {run_dir}",
            flush=True,
        )

    try:
        for epoch in range(start_epoch, cfg.epochs):
            if step >= total_steps:
                break
            started = time.perf_counter()
            data.train_loader.set_epoch(epoch)
            model.train()
            set_bn_eval(model, all_bn=cfg.freeze_bn, frozen_names=frozen)
            totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, n
            bad_step = torch.full((), -1, dtype=torch.int64, device=device)
            bar = _progress_bar(cfg, ctx, epoch, min(steps_per_epoch, total_steps - step))
            lr = cfg.lr
            for index, (x, y) in enumerate(data.train_loader):
                if step >= total_steps:
                    break
                lr = set_lr(optimizer, cfg.lr, lr_factor(step, **schedule))
                with autocast:
                    logits = runner(x)
                    loss = criterion(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update(model)
                with torch.no_grad():  # statistics stay on the device: no host sync per step
                    loss = loss.detach()
                    first_bad = (bad_step < 0) & ~torch.isfinite(loss)
                    bad_step.masked_fill_(first_bad, step)
                    totals[0] += loss.double() * y.numel()
                    totals[1] += (logits.argmax(1) == y).sum()
                    totals[2] += y.numel()
                step += 1
                if (index + 1) % _CHECK_EVERY == 0 or step >= total_steps:
                    _check_finite(bad_step, ctx, epoch, lr)
                    if bar is not None:
                        _update_bar(bar, totals, started, index + 1)
            if bar is not None:
                bar.close()
            _check_finite(bad_step, ctx, epoch, lr)
            all_reduce_sum(totals, ctx)
            train_seconds = time.perf_counter() - started
            loss_sum, correct, seen = totals.tolist()
            scores = evaluate_loader(
                eval_model,
                data.eval_loader,
                num_classes=data.meta.num_classes,
                autocast=autocast,
                tta_flip=False,
            )
            split = data.eval_split
            row = {
                "epoch": epoch + 1,
                "step": step,
                "train_loss": loss_sum / max(seen, 1),
                "train_acc": correct / max(seen, 1),
                f"{split}_loss": scores["loss"],
                f"{split}_acc": scores["top1"],
                "lr": lr,
                "images_per_s": seen / max(train_seconds, 1e-9),
                "seconds": time.perf_counter() - started,
            }
            history.append(row)
            if ctx.is_main:
                meta = data.meta
                improved = row[f"{split}_acc"] > best_acc
                best_acc = max(best_acc, row[f"{split}_acc"])
                metrics = {k: v for k, v in row.items() if k not in ("epoch", "step")}
                if improved:
                    save_checkpoint(
                        run_dir / "best", eval_model, data_meta=meta, epoch=epoch + 1,
                        step=step, metrics=metrics, config=cfg.to_dict(),
                    )  # fmt: skip
                extra = {
                    "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                    "optimizer": optimizer.state_dict(),
                    "ema": ema.module.state_dict() if ema is not None else None,
                    "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    "history": history,
                    "best_acc": best_acc,
                }
                save_checkpoint(
                    run_dir / "last", eval_model, data_meta=meta, epoch=epoch + 1, step=step,
                    metrics=metrics, extra_state=extra, config=cfg.to_dict(),
                )  # fmt: skip
                log.write(history)
    finally:
        log.close()

    final = _final_metrics(cfg, data, eval_model, history, autocast)
    if ctx.is_main:
        from resnet.io import atomic_save_json

        atomic_save_json(run_dir / "results.json", final)
        print("final: " + "  ".join(f"{k} {v:.4f}" for k, v in final.items()), flush=True)
    return TrainResult(
        run_dir=run_dir,
        best_checkpoint=run_dir / "best.safetensors",
        last_checkpoint=run_dir / "last.safetensors",
        history=history,
        metrics=final,
        config=cfg,
    )


def _default_name(cfg: TrainConfig) -> str:
    dataset = Path(cfg.dataset).stem if os.sep in cfg.dataset else cfg.dataset
    return f"{cfg.model}-{dataset}"


def _check_finite(bad_step: torch.Tensor, ctx: DistContext, epoch: int, lr: float) -> None:
    # All processes reduce and raise together, so none waits forever in a collective.
    flag = all_reduce_max(bad_step.clone(), ctx)
    if int(flag) >= 0:
        raise NonFiniteLossError(
            f"loss became NaN/inf at step {int(flag)} (epoch {epoch + 1}, lr {lr:.3g}); "
            "lower the learning rate or set grad_clip; the last good checkpoint is kept"
        )


def _progress_bar(cfg: TrainConfig, ctx: DistContext, epoch: int, total: int) -> Any:
    if not (cfg.progress and ctx.is_main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="step")


def _update_bar(bar: Any, totals: torch.Tensor, started: float, steps_done: int) -> None:
    loss_sum, correct, seen = totals.tolist()
    bar.update(steps_done - bar.n)
    bar.set_postfix(
        loss=f"{loss_sum / max(seen, 1):.4f}",
        acc=f"{correct / max(seen, 1):.4f}",
        img_s=f"{seen / max(time.perf_counter() - started, 1e-9):.0f}",
    )


def _final_metrics(cfg: TrainConfig, data: Any, eval_model: nn.Module, history, autocast) -> dict:
    """Test numbers of the final model (the last epoch's if they were computed on test already)."""
    final: dict[str, float] = {}
    if history:
        final["train_loss"] = history[-1]["train_loss"]
        final["train_acc"] = history[-1]["train_acc"]
    if data.eval_split == "test" and not cfg.eval_tta and cfg.eval_subset is None and history:
        final["test_loss"] = history[-1]["test_loss"]
        final["test_acc"] = history[-1]["test_acc"]
        return final
    if data.test_loader is None:
        return final
    scores = evaluate_loader(
        eval_model,
        data.test_loader,
        num_classes=data.meta.num_classes,
        autocast=autocast,
        tta_flip=cfg.eval_tta,
    )
    final.update(test_loss=scores["loss"], test_acc=scores["top1"], test_top5=scores["top5"])
    return final

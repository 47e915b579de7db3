"""The degradation problem (arXiv 1512.03385 §4.1, Figure 6): a deeper *plain* network has a
higher *training* error than a shallower one, which overfitting cannot explain; with shortcuts
the deeper network trains at least as well as the shallower one.

Every network is trained by ``resnet.engine.train.train`` with one recipe and one budget; this
module only builds the configs, collects the per-epoch curves and compares them.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Optional

from resnet.checks import distinct, switches
from resnet.errors import ConfigError
from resnet.experiments.common import load_split, log
from resnet.run import Run

__all__ = ["run_degradation", "degradation_table"]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, statistics.pstdev(values) if len(values) > 1 else 0.0


def _error_curves(history: list[dict]) -> tuple[list[float], list[float]]:
    train = [1.0 - row["train_acc"] for row in history]
    test_key = "test_acc" if all("test_acc" in row for row in history) else "val_acc"
    test = [1.0 - row[test_key] for row in history]
    return train, test


def _summarize(runs: list[dict]) -> dict[str, Any]:
    train_curves = [run["train_error"] for run in runs]
    test_curves = [run["test_error"] for run in runs]
    epochs = min(len(c) for c in train_curves)
    summary: dict[str, Any] = {"seeds": [run["seed"] for run in runs]}
    for key, curves in (("train_error", train_curves), ("test_error", test_curves)):
        per_epoch = [_mean_std([c[e] for c in curves]) for e in range(epochs)]
        summary[f"{key}_mean"] = [m for m, _ in per_epoch]
        summary[f"{key}_std"] = [s for _, s in per_epoch]
        summary[f"final_{key}"], summary[f"final_{key}_std"] = per_epoch[-1]
    curves = [run.get("iteration_curve") or [] for run in runs]
    if all(curves):
        points = min(len(c) for c in curves)
        summary["iteration_steps"] = [c["step"] for c in curves[0][:points]]
        summary["iteration_train_error"] = [
            statistics.fmean(c[i]["train_error"] for c in curves) for i in range(points)
        ]
        summary["steps_per_epoch"] = runs[0]["steps_per_epoch"]
    summary["parameters"] = runs[0]["parameters"]
    summary["last_checkpoints"] = [run["last_checkpoint"] for run in runs]
    return summary


def _verdict(summary: dict, depths: Sequence[int], tolerance: float) -> dict[str, Any]:
    shallow, deep = min(depths), max(depths)
    plain_s, plain_d = summary[f"plain{shallow}"], summary[f"plain{deep}"]
    res_s, res_d = summary[f"resnet{shallow}"], summary[f"resnet{deep}"]
    plain_gap = plain_d["final_train_error"] - plain_s["final_train_error"]
    res_gap = res_d["final_train_error"] - res_s["final_train_error"]
    res_test_gap = res_d["final_test_error"] - res_s["final_test_error"]
    # The seed-to-seed spread of the two nets compared: a gap counts only beyond it.
    plain_spread = max(plain_s["final_train_error_std"], plain_d["final_train_error_std"])
    res_spread = max(res_s["final_train_error_std"], res_d["final_train_error_std"])
    seeds = len(plain_s["seeds"])
    return {
        "shallow": shallow,
        "deep": deep,
        "seeds": seeds,
        "plain_spread": plain_spread,
        "resnet_spread": res_spread,
        # With one seed there is no spread to beat: the claims then rest on the gap alone.
        "plain_gap_beyond_spread": plain_gap > 2 * plain_spread if seeds > 1 else None,
        "resnet_gap_beyond_spread": -res_gap > 2 * res_spread if seeds > 1 else None,
        "middle_depths": {
            kind: {
                str(d): summary[f"{kind}{d}"]["final_train_error"]
                for d in sorted(depths)
                if d not in (shallow, deep)
            }
            for kind in ("plain", "resnet")
        },
        "tolerance": tolerance,
        "plain_train_gap": plain_gap,
        "plain_deeper_has_higher_train_error": plain_gap > 0,
        "resnet_train_gap": res_gap,
        "resnet_test_gap": res_test_gap,
        "resnet_deeper_matches_or_beats": res_gap <= tolerance,
        "resnet_deeper_beats": res_gap < 0,
        "deep_resnet_vs_deep_plain_train_gap": res_d["final_train_error"]
        - plain_d["final_train_error"],
    }


def run_degradation(
    *,
    dataset: Any = "fashion-mnist",
    data_dir: Optional[str] = None,
    depths: Sequence[int] = (20, 56),
    seeds: Sequence[int] = (0,),
    train_subset: Optional[int] = None,
    test_subset: Optional[int] = None,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 0.1,
    schedule: str = "cosine",
    warmup_epochs: float = 0.0,
    weight_decay: float = 1e-4,
    augment: bool = True,
    tolerance: float = 0.01,
    amp: str = "off",
    curve_every: Optional[int] = None,
    zero_init_residual: bool = False,
    run: Optional[Run] = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train plain-d and resnet-d for every depth d and seed with one recipe; compare.

    ``dataset`` is a name or path, or a ``{"train": ..., "test": ...}`` pair of in-memory
    datasets (the demo loads its data once and hands it on). Every network trains on the same
    ``train_subset`` train images and is scored after each epoch on the same ``test_subset``
    test images (a short run would spend more time scoring 10,000 test images
    than training). Each training is a sub-run of ``run`` (default: a new ``runs/degradation-N``).
    ``tolerance`` (absolute error, 0.01 = one percentage point) is how close the deeper ResNet's
    final training error must be to the shallower one's to count as "matching" it. Returns
    plain data: per-run curves, per-network mean and spread over seeds, and the verdict.
    """
    switches(augment=augment, zero_init_residual=zero_init_residual)
    if len(depths) < 2 or not seeds:
        raise ConfigError("degradation needs at least two depths and one seed, e.g. --depths 20 56")
    depths, seeds = distinct("depths", depths), distinct("seeds", seeds)
    if not 0 <= tolerance <= 1:  # also refuses NaN, which would make every verdict False
        raise ConfigError(f"tolerance must be from 0 to 1 (0.01 = one point), got {tolerance}")
    splits = dataset if isinstance(dataset, dict) else {"train": dataset, "test": dataset}
    data = {
        split: load_split(splits[split], split, data_dir=data_dir, subset=subset)
        for split, subset in (("train", train_subset), ("test", test_subset))
    }
    name_of_data = data["train"].meta.name
    run = run if run is not None else Run.open(name="degradation")
    # Every network, plain or residual, deep or shallow, trains with this one recipe; "auto"
    # amp is bf16 where the CPU has it, for every net alike.
    recipe = dict(
        epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule,
        warmup_epochs=warmup_epochs, weight_decay=weight_decay, augment=augment, amp=amp,
    )  # fmt: skip
    runs = _train_networks(
        data, depths, seeds, recipe, run,
        curve_every=curve_every, zero_init_residual=zero_init_residual, progress=progress,
    )  # fmt: skip
    summary = {
        f"{kind}{depth}": _summarize([r for r in runs if r["model"] == f"{kind}{depth}"])
        for kind in ("plain", "resnet")
        for depth in sorted(depths)
    }
    return {
        "experiment": "degradation",
        "dataset": name_of_data,
        "depths": sorted(depths),
        "seeds": list(seeds),
        "recipe": {
            "train_subset": train_subset,
            "test_subset": test_subset,
            **recipe,
            "zero_init_residual": zero_init_residual,
        },
        "runs": runs,
        "summary": summary,
        "verdict": _verdict(summary, depths, tolerance),
    }


def _train_networks(
    data: dict[str, Any],
    depths: Sequence[int],
    seeds: Sequence[int],
    recipe: dict[str, Any],
    run: Run,
    *,
    curve_every: Optional[int],
    zero_init_residual: bool,
    progress: bool,
) -> list[dict[str, Any]]:
    """Train plain-d and resnet-d for every seed and depth, each a sub-run of ``run``."""
    from resnet.engine.config import TrainConfig
    from resnet.engine.train import train

    runs: list[dict[str, Any]] = []
    total = len(seeds) * len(depths) * 2
    for seed in seeds:
        for kind in ("plain", "resnet"):
            for depth in sorted(depths):
                name = f"{kind}{depth}"
                log(f"  [{len(runs) + 1}/{total}] training {name} seed {seed}", enabled=progress)
                config = TrainConfig(
                    model=name, dataset=data["train"].meta.name, seed=seed,
                    device=str(run.device), curve_every=curve_every, name=f"{name}-seed{seed}",
                    # Plain nets ignore it: zeroing a block's last BN would cut their only path.
                    model_kwargs={"zero_init_residual": True} if zero_init_residual else {},
                    progress=progress, log_tensorboard=False, **recipe,
                )  # fmt: skip
                result = train(config, run=run.child(config.name), datasets=data)
                runs.append(_run_record(name, kind, depth, seed, result))
                log(
                    f"      {name}: final train error {100 * runs[-1]['train_error'][-1]:.2f}%, "
                    f"test error {100 * runs[-1]['test_error'][-1]:.2f}%",
                    enabled=progress,
                )
    return runs


def _run_record(name: str, kind: str, depth: int, seed: int, result: Any) -> dict[str, Any]:
    train_error, test_error = _error_curves(result.history)
    return {
        "model": name,
        "kind": kind,
        "depth": depth,
        "seed": seed,
        "train_error": train_error,
        "test_error": test_error,
        "iteration_curve": [
            {"step": row["step"], "train_error": 1.0 - row["train_acc"]} for row in result.curve
        ],
        "steps_per_epoch": result.history[0]["step"] if result.history else 0,
        "history": result.history,
        "run_dir": str(result.run_dir),
        "last_checkpoint": str(result.last_checkpoint),
        "parameters": _count_parameters(result.last_checkpoint),
    }


def _count_parameters(checkpoint: Any) -> int:
    from resnet.engine.checkpoint import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    return sum(p.numel() for p in model.parameters())


def degradation_table(result: dict) -> str:
    """A Markdown table: network, parameters, final training and test error (mean ± spread)."""
    lines = [
        "| network | parameters | final training error | final test error |",
        "|---|---:|---:|---:|",
    ]
    for name, net in result["summary"].items():
        spread = len(net["seeds"]) > 1
        train = f"{100 * net['final_train_error']:.2f}%"
        test = f"{100 * net['final_test_error']:.2f}%"
        if spread:
            train += f" ± {100 * net['final_train_error_std']:.2f}"
            test += f" ± {100 * net['final_test_error_std']:.2f}"
        lines.append(f"| {name} | {net['parameters']:,} | {train} | {test} |")
    return "\n".join(lines)

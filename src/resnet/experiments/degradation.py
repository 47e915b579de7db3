"""The degradation problem (arXiv 1512.03385 §4.1, Figure 6): a deeper *plain* network has a
higher *training* error than a shallower one, which overfitting cannot explain; with shortcuts
the deeper network trains at least as well as the shallower one.

Every network is trained by ``resnet.engine.train.train`` with one recipe and one budget; this
module only builds the configs, collects the per-epoch curves and compares them.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

from resnet.errors import ConfigError
from resnet.experiments.common import load_split, log

__all__ = ["write_subset_npz", "run_degradation", "degradation_table"]


def write_subset_npz(
    dataset: str,
    path: Union[str, Path],
    *,
    train_subset: Optional[int],
    test_subset: Optional[int],
    data_dir: Optional[str] = None,
) -> Path:
    """Write the first ``train_subset`` train and first ``test_subset`` test images of an
    in-memory dataset as a MedMNIST-style ``.npz`` (written atomically).

    The engine scores every epoch on the whole test split; a short run trains on a few thousand
    images, and scoring 10,000 test images per epoch would cost more than the training. The
    subset keeps the class names; mean/std are recomputed by the data layer on the subset.
    """
    import numpy as np

    from resnet.io import atomic_write

    arrays: dict[str, Any] = {}
    for split, subset in (("train", train_subset), ("test", test_subset)):
        data = load_split(dataset, split, data_dir=data_dir, subset=subset)
        if not hasattr(data, "images"):
            raise ConfigError(
                f"a test subset needs an in-memory dataset, {dataset!r} is an image folder; "
                "leave --test-subset out"
            )
        images = data.images.numpy()  # (N, C, H, W) uint8
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
        arrays[f"{split}_images"] = np.ascontiguousarray(images)
        arrays[f"{split}_labels"] = data.labels.numpy()
        arrays["class_names"] = np.array(data.meta.class_names)
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


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
    return {
        "shallow": shallow,
        "deep": deep,
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
    dataset: str = "fashion-mnist",
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
    out_dir: Union[str, Path] = "runs/degradation",
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Train plain-d and resnet-d for every depth d and seed with one recipe; compare.

    ``tolerance`` (absolute error, 0.01 = one percentage point) is how close the deeper ResNet's
    final training error must be to the shallower one's to count as "matching" it. With
    ``test_subset`` the runs train on a ``.npz`` of the train and test subsets (see
    :func:`write_subset_npz`). Returns plain data: per-run curves, per-network mean and spread
    over seeds, and the verdict.
    """
    from resnet.engine.config import TrainConfig
    from resnet.engine.train import train

    if len(depths) < 2 or not seeds:
        raise ConfigError("degradation needs at least two depths and one seed, e.g. --depths 20 56")
    out_dir = Path(out_dir)
    source, subset_for_engine = dataset, train_subset
    if test_subset is not None:
        source = str(
            write_subset_npz(
                dataset,
                out_dir / f"{Path(dataset).stem}-subset.npz",
                train_subset=train_subset,
                test_subset=test_subset,
                data_dir=data_dir,
            )
        )
        subset_for_engine = None  # the .npz already holds exactly the subset
    runs = []
    total = len(seeds) * len(depths) * 2
    for seed in seeds:
        for kind in ("plain", "resnet"):
            for depth in sorted(depths):
                name = f"{kind}{depth}"
                log(f"  [{len(runs) + 1}/{total}] training {name} seed {seed}", enabled=progress)
                config = TrainConfig(
                    model=name,
                    dataset=source,
                    data_dir=data_dir,
                    train_subset=subset_for_engine,
                    epochs=epochs,
                    batch_size=batch_size,
                    lr=lr,
                    schedule=schedule,
                    warmup_epochs=warmup_epochs,
                    weight_decay=weight_decay,
                    augment=augment,
                    seed=seed,
                    device=device,
                    # float32 everywhere: precision must not be one more difference between
                    # the nets compared, nor between machines with and without bf16 units.
                    amp="off",
                    runs_dir=str(out_dir / "runs"),
                    name=f"{name}-seed{seed}",
                    progress=progress,
                    log_tensorboard=False,
                )
                result = train(config)
                train_error, test_error = _error_curves(result.history)
                runs.append(
                    {
                        "model": name,
                        "kind": kind,
                        "depth": depth,
                        "seed": seed,
                        "train_error": train_error,
                        "test_error": test_error,
                        "history": result.history,
                        "run_dir": str(result.run_dir),
                        "last_checkpoint": str(result.last_checkpoint),
                        "parameters": _count_parameters(result.last_checkpoint),
                    }
                )
                log(
                    f"      {name}: final train error {100 * train_error[-1]:.2f}%, "
                    f"test error {100 * test_error[-1]:.2f}%",
                    enabled=progress,
                )
    summary = {
        f"{kind}{depth}": _summarize([r for r in runs if r["model"] == f"{kind}{depth}"])
        for kind in ("plain", "resnet")
        for depth in sorted(depths)
    }
    return {
        "experiment": "degradation",
        "dataset": dataset,
        "source": source,  # what the engine trained on: the dataset, or the subset .npz
        "depths": sorted(depths),
        "seeds": list(seeds),
        "recipe": {
            "train_subset": train_subset,
            "test_subset": test_subset,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "schedule": schedule,
            "warmup_epochs": warmup_epochs,
            "weight_decay": weight_decay,
            "augment": augment,
        },
        "runs": runs,
        "summary": summary,
        "verdict": _verdict(summary, depths, tolerance),
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

"""Pictures of the experiments' plain-data results: one function per experiment, each writing a
PNG atomically. matplotlib is imported inside each function with the Agg backend, so importing
the experiments never needs a display or pays matplotlib's import time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Union

from resnet.io import atomic_write

__all__ = ["plot_block", "plot_gradflow", "plot_degradation", "plot_landscape", "plot_lesion"]

PathLike = Union[str, Path]
# One colour per depth / network, readable by the colour-blind (Okabe-Ito).
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: PathLike) -> Path:
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _finite(values: list) -> list[float]:
    return [v if v is not None and math.isfinite(v) else float("nan") for v in values]


def plot_block(result: dict, path: PathLike) -> Path:
    """Input X, the residual F(X) and the output relu(F(X) + X), channel 0, side by side."""
    plt = _pyplot()
    maps = result["tensors"]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    titles = ("input X", "residual branch F(X)", "output relu(F(X) + X)")
    for ax, key, title in zip(axes, ("input", "residual", "output"), titles):
        image = ax.imshow(maps[key], cmap="viridis")
        ax.set_title(title)
        ax.axis("off")
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(
        f"ResidualBlock(3) on {tuple(result['input_shape'])}: identity carries "
        f"{100 * result['identity_fraction']:.1f}% of the variance"
    )
    return _save(fig, path)


def plot_gradflow(result: dict, path: PathLike) -> Path:
    """Log-scale gradient norm against depth, one line per network; at init and after k steps."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    panels = (
        ("norms_init", "at initialization"),
        ("norms_after", f"after {result['steps']} steps"),
    )
    for ax, (key, title) in zip(axes, panels):
        for i, net in enumerate(result["networks"]):
            style = "-" if net["kind"] == "resnet" else "--"
            ax.plot(
                range(1, net["num_weights"] + 1),
                _finite(net[key]),
                style,
                color=COLORS[i % len(COLORS)],
                label=net["label"],
                linewidth=1.6,
            )
        ax.set_yscale("log")
        ax.set_xlabel("layer (conv / fc weight, input side -> classifier)")
        ax.set_title(f"{title}, {result['dataset']}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("gradient norm ||dL/dW|| (log scale)")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def plot_degradation(result: dict, path: PathLike) -> Path:
    """Figure 6 of arXiv 1512.03385: plain nets left, residual right, one colour per depth.
    Thin lines: training error per iteration (smoothed over a few windows); bold lines with
    dots: test error at each epoch end (grey dotted lines mark the epochs); a shaded band is
    the spread of the test error over seeds. Runs without per-iteration curves are drawn per
    epoch (dashed: training error)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    per_iteration = False
    for ax, kind, title in zip(axes, ("plain", "resnet"), ("plain networks", "ResNets")):
        for i, depth in enumerate(result["depths"]):
            net = result["summary"].get(f"{kind}{depth}")
            if net is None:
                continue
            color = COLORS[i % len(COLORS)]
            per_iteration = bool(net.get("iteration_steps"))
            _degradation_lines(ax, net, color, f"{kind}-{depth}")
        if per_iteration:
            net = next(iter(result["summary"].values()))
            for epoch in range(1, len(net["test_error_mean"])):
                ax.axvline(epoch * net["steps_per_epoch"], color="grey", linestyle=":", alpha=0.5)
        ax.set_title(title)
        ax.set_xlabel("iteration" if per_iteration else "epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    # Like the paper's 0-20% axis: the first iterations (near chance) would squeeze the end,
    # where the nets part, into a sliver.
    finals = [100 * net[f"final_{key}"] for net in result["summary"].values()
              for key in ("train_error", "test_error")]  # fmt: skip
    if finals:
        axes[0].set_ylim(0, min(100.0, 2.5 * max(finals)))
    style = "thin = training error per iteration" if per_iteration else "dashed = training error"
    fig.suptitle(f"{result['dataset']}: {style}, bold = test error")
    return _save(fig, path)


def _degradation_lines(ax, net: dict, color: str, label: str) -> None:
    epochs = list(range(1, len(net["test_error_mean"]) + 1))
    if net.get("iteration_steps"):
        train = [100 * v for v in net["iteration_train_error"]]
        ax.plot(net["iteration_steps"], _smooth(train, 5), "-", color=color, linewidth=1.0,
                alpha=0.8, label=f"{label} train")  # fmt: skip
        xs = [e * net["steps_per_epoch"] for e in epochs]
    else:
        xs = epochs
        ax.plot(xs, [100 * v for v in net["train_error_mean"]], "--", color=color,
                linewidth=1.2, label=f"{label} train")  # fmt: skip
    mean = [100 * v for v in net["test_error_mean"]]
    ax.plot(xs, mean, "o-", color=color, linewidth=2.4, markersize=4, label=f"{label} test")
    spread = [100 * v for v in net["test_error_std"]]
    if any(spread):
        low = [m - s for m, s in zip(mean, spread)]
        high = [m + s for m, s in zip(mean, spread)]
        ax.fill_between(xs, low, high, color=color, alpha=0.15)


def _smooth(values: list[float], width: int) -> list[float]:
    """A trailing moving average (the first points average what exists so far)."""
    out, total = [], 0.0
    for index, value in enumerate(values):
        total += value - (values[index - width] if index >= width else 0.0)
        out.append(total / min(index + 1, width))
    return out


def plot_lesion(result: dict, path: PathLike) -> Path:
    """Test accuracy after deleting each single block, plain vs residual (arXiv 1605.06431)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, net in enumerate(result["networks"]):
        color = COLORS[i % len(COLORS)]
        rows = net["blocks"]
        xs = [r["index"] + 1 for r in rows if not r["skipped"]]
        ys = [100 * r["accuracy"] for r in rows if not r["skipped"]]
        ax.plot(xs, ys, "o-", color=color, label=f"{net['label']}: one block deleted")
        ax.axhline(
            100 * net["baseline_accuracy"],
            color=color,
            linestyle=":",
            label=f"{net['label']}: nothing deleted",
        )
        for r in rows:
            if r["skipped"]:
                ax.axvline(r["index"] + 1, color="grey", alpha=0.25)
    ax.set_xlabel("deleted block (grey lines: downsampling blocks, skipped)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"Lesion study on {result['dataset']} ({result['eval_samples']} test images)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_landscape(result: dict, path: PathLike) -> Path:
    """Top: the 1D loss curves; below: one 2D contour per network, side by side."""
    plt = _pyplot()
    nets = result["networks"]
    has_2d = all("loss_2d" in net for net in nets)
    rows = 2 if has_2d else 1
    fig, axes = plt.subplots(
        rows, len(nets), figsize=(5.5 * len(nets), 4.5 * rows), squeeze=False, layout="constrained"
    )
    for i, net in enumerate(nets):
        ax = axes[0][i]
        ax.plot(net["alphas"], _finite(net["loss_1d"]), color=COLORS[i % len(COLORS)])
        ax.set_yscale("log")
        ax.set_xlabel("step along a filter-normalized direction")
        ax.set_ylabel("test loss (log scale)")
        ax.set_title(f"{net['label']}: 1D")
        ax.grid(True, alpha=0.3)
        if has_2d:
            ax2 = axes[1][i]
            grid = [
                [math.log10(v) if v and v > 0 else float("nan") for v in row]
                for row in net["loss_2d"]
            ]
            contour = ax2.contour(
                net["alphas_2d"], net["alphas_2d"], grid, levels=15, cmap="viridis"
            )
            ax2.clabel(contour, fontsize=7, fmt="%.1f")
            ax2.plot([0], [0], "k+", markersize=10)
            ax2.set_title(f"{net['label']}: 2D (contours of log10 loss)")
            ax2.set_xlabel("direction 1")
            ax2.set_ylabel("direction 2")
    fig.suptitle(f"Loss landscape on {result['dataset']} (arXiv 1712.09913)")
    return _save(fig, path)

"""Gradient flow by depth: does the error signal reach the first layer? (arXiv 1512.03385 §1)

For plain-N and resnet-N, with and without batch normalization, we backpropagate the loss of one
real batch and read the gradient norm of every conv and fc weight tensor, from the input side to
the classifier. In a deep plain net without normalization the norm shrinks (or blows up) layer
after layer; the shortcut ``Y = F(X) + X`` gives the gradient a path around every block
(dY/dX = dF/dX + 1), so it reaches the first layer with about the same size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resnet.checks import distinct
from resnet.errors import ConfigError
from resnet.experiments.common import (
    eval_batches,
    load_split,
    log,
    model_for_dataset,
    run_device,
)
from resnet.run import Run

__all__ = ["weight_tensors_in_depth_order", "gradient_norms_by_depth", "run_gradflow"]

# How each network's normalization is named in the table and the plot's legend.
_NORM_LABELS = {"batch": "BN", "none": "no BN", "group": "GN"}


def weight_tensors_in_depth_order(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every conv and fc weight, in the order the modules were registered.

    The builders register modules in the order the input meets them (stem, layer1.0.conv1,
    layer1.0.conv2, ..., fc), so registration order is depth order; a projection shortcut's
    1x1 conv sits right after the block's last conv, beside it rather than after it.
    """
    return [
        (f"{name}.weight", module.weight)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]


def gradient_norms_by_depth(model: nn.Module, x: Tensor, y: Tensor) -> list[dict[str, Any]]:
    """L2 norm of the gradient of the mean cross-entropy on (x, y) for every conv/fc weight.

    The model runs in train mode (batch statistics, as during training). We read ``param.grad``
    after one backward pass: the blocks use in-place ReLUs, which backward hooks would not
    survive. Non-finite norms (a diverged no-BN net) are returned as ``nan``.
    """
    weights = weight_tensors_in_depth_order(model)
    model.train()
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    rows = []
    for index, (name, weight) in enumerate(weights):
        norm = float(weight.grad.double().norm()) if weight.grad is not None else 0.0
        rows.append(
            {"index": index, "name": name, "norm": norm if math.isfinite(norm) else float("nan")}
        )
    model.zero_grad(set_to_none=True)
    return rows


def _first_last_ratio(rows: list[dict[str, Any]]) -> float:
    first, last = rows[0]["norm"], rows[-1]["norm"]
    return first / last if last > 0 and math.isfinite(first / last) else float("nan")


def _decades_spread(rows: list[dict[str, Any]]) -> float:
    """log10(max / min) of the conv layers' gradient norms: how many orders of magnitude apart
    the best- and worst-fed layers are (0 = every layer gets the same)."""
    norms = [row["norm"] for row in rows if ".fc." not in f".{row['name']}"]
    if not norms or not all(math.isfinite(n) and n > 0 for n in norms):
        return float("nan")
    return math.log10(max(norms) / min(norms))


def _probe(
    model: nn.Module, batches: list, steps: int, lr: float, momentum: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[float]]:
    """Gradient norms on the probe batch (``batches[0]``) at init and after ``steps`` SGD steps
    on the batches after it, and the loss of each step."""
    probe_x, probe_y = batches[0]
    at_init = gradient_norms_by_depth(model, probe_x, probe_y)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    losses = []
    for x, y in batches[1 : steps + 1]:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    after = gradient_norms_by_depth(model, probe_x, probe_y) if steps else at_init
    return at_init, after, losses


def _network_record(
    name: str, kind: str, norm: str, at_init: list, after: list, losses: list[float]
) -> dict[str, Any]:
    """One network's row of ``gradflow.json``."""
    return {
        "label": f"{name} ({_NORM_LABELS.get(norm, norm)})",
        "model": name,
        "kind": kind,
        "norm_layer": norm,
        "num_weights": len(at_init),
        "names": [row["name"] for row in at_init],
        "norms_init": [row["norm"] for row in at_init],
        "norms_after": [row["norm"] for row in after],
        "ratio_init": _first_last_ratio(at_init),
        "ratio_after": _first_last_ratio(after),
        "spread_init": _decades_spread(at_init),
        "spread_after": _decades_spread(after),
        "step_losses": losses,
    }


def run_gradflow(
    dataset: Any = "fashion-mnist",
    *,
    depth: int = 56,
    kinds: Sequence[str] = ("plain", "resnet"),
    norms: Sequence[str] = ("batch", "none"),
    steps: int = 10,
    batch_size: int = 128,
    lr: float = 0.01,
    momentum: float = 0.9,
    seed: int = 0,
    data_dir: Optional[str] = None,
    run: Optional[Run] = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Gradient norm by depth for each of ``kinds`` x ``norms`` at depth ``depth``.

    The same real training batch (the first of a seeded shuffle) is the probe at initialization
    and again after ``steps`` SGD steps on the following batches. Those few steps are a probe
    of how the gradients move, not a training run: no epochs, no evaluation, no checkpoints.
    Every network starts from the same seed. Returns plain data (JSON-ready).
    """
    if steps < 0 or batch_size < 1:
        raise ConfigError(f"need steps >= 0 and batch_size >= 1, got {steps} and {batch_size}")
    if not (math.isfinite(lr) and lr > 0):  # a NaN step would make every later norm NaN
        raise ConfigError(f"lr must be a finite number > 0, got {lr}")
    kinds, norms = distinct("kinds", kinds), distinct("norms", norms)
    for kind in kinds:
        if kind not in ("plain", "resnet"):
            raise ConfigError(f"network kind must be 'plain' or 'resnet', got {kind!r}")
    device = run_device(run)
    train = load_split(dataset, "train", data_dir=data_dir)
    if len(train) < batch_size * (steps + 1):
        raise ConfigError(
            f"the training set has {len(train)} images, too few for {steps} steps of "
            f"{batch_size}; lower --steps or --batch-size"
        )
    train = train.subset(batch_size * (steps + 1)) if hasattr(train, "subset") else train
    batches = eval_batches(train, batch_size=batch_size, device=device, shuffle=True, seed=seed)
    networks = []
    for kind in kinds:
        for norm in norms:
            name = f"{kind}{depth}"
            torch.manual_seed(seed)
            model = model_for_dataset(name, train.meta, norm_layer=norm).to(device)
            at_init, after, losses = _probe(model, batches, steps, lr, momentum)
            networks.append(_network_record(name, kind, norm, at_init, after, losses))
            log(
                f"  gradflow {networks[-1]['label']:<22} first/last grad norm: at init "
                f"{networks[-1]['ratio_init']:.3g}, after {steps} steps "
                f"{networks[-1]['ratio_after']:.3g}",
                enabled=progress,
            )
    return {
        "experiment": "gradflow",
        "dataset": train.meta.name,
        "depth": depth,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "momentum": momentum,
        "seed": seed,
        "device": str(device),
        "networks": networks,
    }

"""The loss landscape around a trained network (Li et al. 2018, arXiv 1712.09913).

We evaluate ``L(theta + a * d1 + b * d2)`` on a fixed evaluation set, where ``d1``, ``d2`` are
random Gaussian directions rescaled *filter by filter* to the norm of the corresponding weight
filter (§4): without that rescaling a net with large weights would look flat simply because a
step of the same size means less to it. BN parameters and biases get a zero direction, as in
the paper ("ignore biasbn"), and the network is evaluated with its BN running statistics.
Li et al. find plain deep nets chaotic and non-convex, ResNets smooth and nearly convex.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor, nn

from resnet.checks import switches
from resnet.errors import ConfigError
from resnet.experiments.common import (
    evaluate_loss_accuracy,
    log,
    scored_networks,
)
from resnet.run import Run

__all__ = [
    "filter_normalized_direction",
    "loss_along_directions",
    "run_landscape",
]


def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> list[Tensor]:
    """One random direction, a tensor per parameter, filter-normalized (arXiv 1712.09913 §4).

    For a weight of shape (out, ...) each filter ``d[i]`` is rescaled to ``||theta[i]||``; a
    parameter with one dimension (BN scale/shift, biases) gets zeros.
    """
    direction = []
    for param in model.parameters():
        if param.dim() <= 1:
            direction.append(torch.zeros_like(param))
            continue
        d = torch.randn(param.shape, generator=generator, dtype=torch.float32)
        d = d.to(device=param.device, dtype=param.dtype)
        weight_norms = param.detach().flatten(1).norm(dim=1)  # (out,)
        d_norms = d.flatten(1).norm(dim=1).clamp_min(1e-10)
        shape = (-1,) + (1,) * (param.dim() - 1)
        direction.append(d * (weight_norms / d_norms).view(shape))
    return direction


@torch.no_grad()
def loss_along_directions(
    model: nn.Module,
    batches: Sequence[tuple[Tensor, Tensor]],
    directions: Sequence[Sequence[Tensor]],
    coordinates: Sequence[Sequence[float]],
) -> list[dict[str, float]]:
    """Loss and accuracy at ``theta + sum_k c[k] * directions[k]`` for every ``c`` in
    ``coordinates``; the weights are restored afterwards, even on error."""
    params = list(model.parameters())
    origin = [p.detach().clone() for p in params]
    for direction in directions:
        if len(direction) != len(params):
            raise ConfigError("a direction needs one tensor per model parameter")
    results = []
    try:
        for coords in coordinates:
            for index, param in enumerate(params):
                moved = origin[index].clone()
                for c, direction in zip(coords, directions):
                    if c != 0.0:
                        moved.add_(direction[index], alpha=float(c))
                param.copy_(moved)
            results.append(evaluate_loss_accuracy(model, batches))
    finally:
        for param, saved in zip(params, origin):
            param.copy_(saved)
    return results


def _grid(points: int, span: float) -> list[float]:
    if points < 3 or points % 2 == 0:
        raise ConfigError(f"grid points must be odd and >= 3 (to include 0), got {points}")
    if not 0 < span < float("inf"):  # also refuses NaN
        raise ConfigError(f"span must be a finite number > 0, got {span}")
    half = points // 2
    return [span * i / half for i in range(-half, half + 1)]


def run_landscape(
    checkpoints: dict[str, Any],
    *,
    dataset: Any = None,
    data_dir: Optional[str] = None,
    points_1d: int = 41,
    points_2d: int = 11,
    span: float = 1.0,
    two_d: bool = True,
    eval_subset: Optional[int] = 500,
    batch_size: int = 500,
    seed: int = 0,
    run: Optional[Run] = None,
    progress: bool = True,
) -> dict[str, Any]:
    """1D curve and (optionally) 2D grid of the test loss around each checkpoint.

    ``checkpoints`` maps a label to a checkpoint path (or a loaded model). Directions come from
    a generator seeded with ``seed``, the same seed for every network. Returns plain data; the
    2D losses are a row-major (len(betas), len(alphas)) list of lists.
    """
    switches(two_d=two_d)
    if not checkpoints:
        raise ConfigError("landscape needs at least one checkpoint; pass --checkpoint PATH")
    alphas_1d = _grid(points_1d, span)
    alphas_2d = _grid(points_2d, span) if two_d else []
    networks = []
    scored = scored_networks(
        checkpoints, dataset, data_dir=data_dir, subset=eval_subset, batch_size=batch_size, run=run
    )
    for label, _source, model, info, shared in scored:
        model.eval()
        generator = torch.Generator().manual_seed(seed)
        d1 = filter_normalized_direction(model, generator)
        d2 = filter_normalized_direction(model, generator)
        log(f"  landscape {label}: 1D, {len(alphas_1d)} points", enabled=progress)
        curve = loss_along_directions(model, shared.batches, [d1], [[a] for a in alphas_1d])
        entry = {
            "label": label,
            "model": info.get("model_name", label),
            "alphas": alphas_1d,
            "loss_1d": [r["loss"] for r in curve],
            "accuracy_1d": [r["accuracy"] for r in curve],
            "origin_loss": curve[len(curve) // 2]["loss"],
        }
        if two_d:
            log(f"  landscape {label}: 2D, {len(alphas_2d) ** 2} points", enabled=progress)
            coords = [[a, b] for b in alphas_2d for a in alphas_2d]
            flat = loss_along_directions(model, shared.batches, [d1, d2], coords)
            n = len(alphas_2d)
            entry["alphas_2d"] = alphas_2d
            entry["loss_2d"] = [[flat[r * n + c]["loss"] for c in range(n)] for r in range(n)]
        entry["sharpness_1d"] = _curvature(entry["alphas"], entry["loss_1d"])
        networks.append(entry)
    return {
        "experiment": "landscape",
        "dataset": shared.dataset,
        "eval_samples": sum(int(y.numel()) for _, y in shared.batches),
        "span": span,
        "seed": seed,
        "device": str(shared.device),
        "directions": "filter-normalized Gaussian; BN and bias directions zero (arXiv 1712.09913)",
        "networks": networks,
    }


def _curvature(alphas: list[float], losses: list[float]) -> float:
    """Mean rise of the loss at the ends of the 1D curve over the loss at the centre: one number
    for "how steep is the valley" (larger: sharper)."""
    centre = losses[len(losses) // 2]
    return (losses[0] + losses[-1]) / 2.0 - centre

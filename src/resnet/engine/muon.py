"""Muon for the convolution filters, SGD for everything else (Jordan et al. 2024).

SGD moves a filter bank most along the few directions that dominate its gradient. Muon
(MomentUm Orthogonalized by Newton-Schulz; Keller Jordan's airbench94_muon and modded-nanoGPT)
replaces the momentum of each filter bank, read as a (out_channels, in_channels * k * k) matrix,
by the nearest semi-orthogonal matrix: the same singular vectors, every singular value near 1.
Every direction then moves at the same rate. A few Newton-Schulz iterations compute it with
matrix products alone, which is what CPUs with matrix units (and GPUs) run fastest.

As in airbench94_muon, each filter bank is rescaled to unit RMS norm per output filter before its
step. The BatchNorm after every convolution makes the network blind to that scale, so ``lr`` is
the step's size relative to the filters, from the first step to the last. That is why Muon takes
only the filters that a normalisation follows
(:func:`scale_invariant_filters`); the others take SGD steps like every other weight.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from resnet.errors import ConfigError

__all__ = ["Muon", "orthogonalize", "scale_invariant_filters", "split_filters"]

# The quintic iteration's coefficients (Jordan 2024): chosen to lift small singular values fast,
# at the price of leaving them anywhere in about [0.7, 1.2] rather than exactly at 1.
_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(update: Tensor, steps: int = 3, dtype: torch.dtype = torch.float32) -> Tensor:
    """Approximately ``U @ V.T`` of ``update``'s SVD ``U S V.T``, for a 2D ``update``.

    ``steps`` Newton-Schulz iterations of ``X <- aX + (bA + cA^2) X`` with ``A = X X^T``, on the
    wide orientation (rows <= columns, so ``A`` is the small Gram matrix), in ``dtype``; the
    result comes back in ``update``'s dtype and shape.
    """
    if update.dim() != 2:
        raise ValueError(f"orthogonalize needs a 2D matrix, got shape {tuple(update.shape)}")
    a, b, c = _NS_COEFFICIENTS
    tall = update.size(0) > update.size(1)
    x = update.T if tall else update
    x = x.to(dtype)
    x = x / (x.norm() + 1e-7)  # every singular value <= 1, where the iteration converges
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return (x.T if tall else x).to(update.dtype)


def scale_invariant_filters(
    model: nn.Module, channels: int, image_size: Sequence[int], batch: int = 8
) -> set[str]:
    """Names of the trainable filter banks (tensors of 3+ dims) whose scale the training-mode
    network ignores: doubling one leaves its output on a random batch unchanged, as a BatchNorm
    or GroupNorm right after the convolution makes it. Invariance is a property of the
    structure, so the batch is small (``batch`` images of ``channels`` x ``image_size``, each
    side at most 32): one forward per filter bank.

    Checked, not assumed from the layer types: a pre-activation block's last conv (added to the
    shortcut before any normalisation), a squeeze-excitation or ECA conv are not invariant. The
    check runs on a copy (BN statistics, RNG and the model untouched), in float32, with the same
    random draws (dropout, stochastic depth) in every forward.
    """
    trial = copy.deepcopy(model).float().train()
    for module in trial.modules():
        if hasattr(module, "stem_whitened"):  # the structure matters here, not the filter values
            module.stem_whitened = True
    shape = (batch, channels, *(min(int(side), 32) for side in image_size))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    x = x.to(next(trial.parameters()).device)

    def forward() -> Tensor:
        torch.manual_seed(0)
        out = trial(x)
        return (out if isinstance(out, Tensor) else torch.cat([o.flatten() for o in out])).float()

    invariant = set()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        reference = forward()
        # Invariant filters move the output by BN's eps alone (1e-6..1e-3 of it), the others by
        # 10-80% of it; a filter of zeros (a zero-initialised residual) has no scale to test.
        tolerance = 1e-2 * reference.abs().max().item()
        for name, param in trial.named_parameters():
            if param.dim() < 3 or not param.requires_grad or not param.any():
                continue
            param.mul_(2.0)  # powers of two: exact both ways
            changed = (forward() - reference).abs().max().item()
            param.div_(2.0)
            if changed <= tolerance:
                invariant.add(name)
    return invariant


def split_filters(
    model: nn.Module, groups: list[dict], filters: set[str], *, muon_lr: float, lr: float
) -> list[dict]:
    """``param_groups(model, ...)`` with the named ``filters`` moved to groups of their own,
    marked ``muon``: no weight decay (their norm is fixed), and an ``lr_scale`` under which
    the schedule gives them ``muon_lr`` where it gives the rest ``lr``."""
    chosen = {id(p) for name, p in model.named_parameters() if name in filters}
    result = []
    for group in groups:
        rest = [p for p in group["params"] if id(p) not in chosen]
        muon = [p for p in group["params"] if id(p) in chosen]
        if rest:
            result.append({**group, "params": rest})
        if muon:
            result.append(
                {
                    **group,
                    "params": muon,
                    "muon": True,
                    "weight_decay": 0.0,
                    "lr_scale": group["lr_scale"] * muon_lr / lr,
                    "name": group["name"] + "_muon",
                }
            )
    return result


class Muon(torch.optim.Optimizer):
    """Groups marked ``muon`` (:func:`split_filters`) take Muon steps; the others take SGD's.

    Muon, per filter bank ``W`` (out, in, k...) with gradient ``G``: ``B <- mu B + G``, the
    Nesterov look-ahead ``G + mu B``, ``W <- W * sqrt(out) / ||W||``, then ``W <- W - lr *
    orthogonalize(look-ahead as (out, in*k...))``. The others: torch.optim.SGD's arithmetic
    (coupled weight decay, momentum, optional Nesterov), so a model without filters trains
    exactly as under SGD.
    """

    def __init__(
        self,
        groups: list[dict],
        *,
        lr: float,
        momentum: float = 0.9,
        nesterov: bool = False,
        muon_momentum: float = 0.6,
        ns_steps: int = 3,
        ns_dtype: torch.dtype = torch.float32,
    ) -> None:
        if not 0.0 <= momentum < 1.0 or not 0.0 <= muon_momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum} and {muon_momentum}")
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=0.0, muon=False,
                        muon_momentum=muon_momentum, ns_steps=ns_steps)  # fmt: skip
        for group in groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        super().__init__(groups, defaults)
        self.ns_dtype = ns_dtype  # the run's precision, not a hyperparameter to save

    def describe(self) -> str:
        """One line: how many filter banks take Muon steps, and how many SGD ones."""
        muon = sum(len(g["params"]) for g in self.param_groups if g["muon"])
        others = sum(p.dim() >= 3 for g in self.param_groups if not g["muon"] for p in g["params"])
        note = f"; {others} more are not followed by a normalisation" if others else ""
        return f"muon: {muon} filter banks take Muon steps{note}; the other weights take SGD's"

    def filter_names(self, model: nn.Module) -> set[str]:
        """The names in ``model`` of the filter banks that take Muon steps: what
        :func:`scale_invariant_filters` found, so that a copy of the model (the time budget's
        trial) can be split the same way without checking again."""
        chosen = {id(p) for g in self.param_groups if g["muon"] for p in g["params"]}
        return {name for name, p in model.named_parameters() if id(p) in chosen}

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params and group["muon"]:
                self._muon_step(params, group)
            elif params:
                self._sgd_step(params, group)
        return loss

    def _buffers(self, params: list[Tensor]) -> list[Tensor]:
        return [self.state[p].setdefault("momentum_buffer", torch.zeros_like(p)) for p in params]

    def _muon_step(self, params: list[Tensor], group: dict) -> None:
        mu, lr, steps = group["muon_momentum"], group["lr"], group["ns_steps"]
        for param, buffer in zip(params, self._buffers(params)):
            buffer.mul_(mu).add_(param.grad)
            look_ahead = param.grad.add(buffer, alpha=mu)
            param.mul_(param.size(0) ** 0.5 / param.norm().clamp_min(1e-12))
            direction = orthogonalize(look_ahead.flatten(1), steps, self.ns_dtype)
            param.add_(direction.view_as(param), alpha=-lr)

    def _sgd_step(self, params: list[Tensor], group: dict) -> None:
        grads = [p.grad for p in params]
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        momentum = group["momentum"]
        if momentum:
            buffers = self._buffers(params)  # zeros at first, so they start at the gradient
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads)
            if group["nesterov"]:
                grads = torch._foreach_add(grads, buffers, alpha=momentum)
            else:
                grads = buffers
        torch._foreach_add_(params, grads, alpha=-group["lr"])

"""The pieces a run assembles before its first step: seeds, data loaders, the model, and the
context its steps run in (autocast, kernels)."""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from resnet.device import resolve_precision
from resnet.engine.config import TrainConfig
from resnet.engine.distributed import DistContext
from resnet.engine.kernels import SmallMapConvolutions
from resnet.engine.optim import freeze_backbone
from resnet.errors import ConfigError, DataError, NoSplitError
from resnet.models.inputs import input_spec
from resnet.models.norm import FrozenBatchNorm2d

__all__ = [
    "RunData", "StepContext", "seed_everything", "load_data", "build_model", "autocast_context",
    "init_from_data", "check_same_data", "WHITENING_IMAGES",
]  # fmt: skip

WHITENING_IMAGES = 512  # training images a whitened stem is computed from

# The norms that hold statistics (frozen ones hold them fixed already): what freeze_bn acts on.
_BATCH_NORMS = (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d)


def seed_everything(seed: int, deterministic: bool, num_threads: Optional[int] = None) -> None:
    """Seed torch and Python; with ``deterministic``, ask torch for deterministic kernels."""
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # warn_only: a kernel without a deterministic version warns instead of failing the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Deterministic mode also fills every fresh tensor with NaN, a debugging aid that cost
        # 6-13% of a training step on a 2-core CPU (measured: resnet20 1,129-1,158 vs
        # 1,235-1,307 img/s) and changes no result: runs stay bitwise repeatable without it.
        torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = not deterministic


@dataclass
class RunData:
    """The loaders of one run and what the model needs to know about the data."""

    meta: Any  # DatasetMeta of the train split
    train_loader: Any
    eval_loader: Any  # scored every epoch: the val split, or test when there is none
    test_loader: Optional[Any]  # for the final numbers; None when the source has no test split
    eval_split: str  # "val" or "test"
    num_train: int


def load_data(
    cfg: TrainConfig, ctx: DistContext, per_rank_batch: int, datasets: Optional[dict] = None
) -> RunData:
    """Load the splits (or take them from ``datasets``, in memory) and build this process's
    loaders (its shard of every training epoch)."""
    train_set, eval_set, test_set, eval_split = _splits(cfg, datasets or {})
    if cfg.train_subset is not None:
        if not hasattr(train_set, "subset"):
            raise ConfigError(f"train_subset needs an in-memory dataset, {cfg.dataset} is not one")
        train_set = _subset(train_set, cfg.train_subset, "train_subset", "train")
        _check_class_count(train_set, f"{cfg.dataset} (train_subset {cfg.train_subset})")
    if cfg.eval_subset is not None:  # at most N: a recipe's 2000 also fits a smaller test split
        eval_set = eval_set.subset(cfg.eval_subset)
    return _loaders(cfg, ctx, per_rank_batch, train_set, eval_set, test_set, eval_split)


def _subset(data: Any, count: int, field: str, split: str) -> Any:
    # More than the split holds used to mean all of it, while config.yaml kept the larger count
    # (a run "on 100000 images" of 60000).
    if count > len(data):
        raise ConfigError(
            f"{field} {count} is more than the {len(data)} images of the {split} split; "
            f"use at most {len(data)}, or leave {field} unset for all of them"
        )
    return data.subset(count)


def _check_class_count(train_set: Any, dataset: str) -> None:
    # One class trains to a loss of 0 and 100% accuracy in one step, a result that means nothing;
    # so does a train split whose other classes are named but empty (a folder of unreadable files).
    meta = train_set.meta
    if meta.num_classes < 2:
        names = ", ".join(repr(n) for n in meta.class_names) or "none"
        raise DataError(
            f"{dataset} has {meta.num_classes} class(es) ({names}); a classifier needs at least 2: "
            "add a folder per class, or labels 0..K-1 with K >= 2"
        )
    labels = getattr(train_set, "labels", None)
    present = torch.unique(labels).tolist() if isinstance(labels, torch.Tensor) else None
    if present is not None and len(present) < 2:
        only = ", ".join(repr(meta.class_names[c]) for c in present) or "none"
        raise DataError(
            f"{dataset}: the train split holds images of one class only ({only}) of its "
            f"{meta.num_classes}; a classifier needs at least 2: give the other classes images"
        )


def _splits(cfg: TrainConfig, given: dict) -> tuple[Any, Any, Optional[Any], str]:
    """(train, eval, test, eval split name): the given splits, else the loaded ones."""
    from resnet.data import load_dataset

    unknown = set(given) - {"train", "val", "test"}
    if unknown:
        raise ConfigError(f"datasets takes train, val and test splits, got {sorted(unknown)}")
    options: dict[str, Any] = {"data_dir": cfg.data_dir, "val_fraction": cfg.val_fraction}
    if cfg.image_size is not None:
        options["image_size"] = cfg.image_size

    def split(name: str) -> Any:
        if name in given:
            return given[name]
        if given and name == "val" and cfg.val_fraction <= 0:  # in memory: the splits given
            raise NoSplitError("no val split was given")
        return load_dataset(cfg.dataset, name, **options)

    train_set = split("train")
    _check_class_count(train_set, cfg.dataset)
    try:
        test_set = split("test")
    except DataError:
        test_set = None
    # Epochs are scored (and best.* picked) on a validation split wherever there is one: the
    # data's own (MedMNIST's val arrays, a root/val/ folder beside root/test/) or val_fraction
    # of train. The data's own val split used to be passed over for test when val_fraction was
    # 0, so the epoch kept as best was chosen on the test set it was then scored on.
    try:
        eval_set, eval_split = split("val"), "val"
    except NoSplitError:
        eval_set, eval_split = test_set, "test"
    if eval_set is None:
        raise ConfigError(f"{cfg.dataset} has no test split; set val_fraction > 0 (e.g. 0.1)")
    return train_set, eval_set, test_set, eval_split


def _loaders(cfg, ctx, per_rank_batch, train_set, eval_set, test_set, eval_split) -> RunData:
    from resnet.data import make_loader

    channels_last = cfg.channels_last and len(train_set.meta.image_size) == 2
    common = {"device": ctx.device, "seed": cfg.seed, "channels_last": channels_last}
    train_options = {
        **common,
        "train": True,
        "augment": cfg.augment,
        "pad": cfg.pad,
        "erasing": cfg.random_erasing,
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "num_workers": cfg.num_workers,
    }
    train_loader = make_loader(train_set, per_rank_batch, **train_options)
    if getattr(train_loader, "num_samples", 0) % per_rank_batch == 1:
        # A last batch of one image breaks BatchNorm's batch statistics; drop it.
        train_loader = make_loader(train_set, per_rank_batch, drop_last=True, **train_options)
    eval_batch = max(cfg.batch_size, 256)
    eval_options = {**common, "train": False, "num_workers": cfg.num_workers}
    eval_loader = make_loader(eval_set, eval_batch, **eval_options)
    test_loader = None
    if test_set is not None:
        test_loader = (
            eval_loader
            if eval_set is test_set
            else make_loader(test_set, eval_batch, **eval_options)
        )
    return RunData(
        meta=train_set.meta,
        train_loader=train_loader,
        eval_loader=eval_loader,
        test_loader=test_loader,
        eval_split=eval_split,
        num_train=len(train_set),
    )


def build_model(
    cfg: TrainConfig,
    meta: Any,
    device: torch.device,
    *,
    sync_bn: bool = False,
    log: Callable[[str], None] = print,
) -> tuple[nn.Module, list[str]]:
    """The network for ``meta`` (2D or 3D), pretrained and partly frozen as ``cfg`` says; with
    ``sync_bn`` (a multi-process run) and ``cfg.sync_bn`` its BatchNorms share batch statistics.
    ``log`` gets one line on what a pretrained file gave (``LoadReport.describe``).

    Returns the model on ``device`` and the names of its frozen parameters.
    """
    from resnet.engine.checkpoint import checkpoint_assumptions, weight_file
    from resnet.models import create_model, load_weights
    from resnet.models.layouts import check_assumptions

    model = create_model(
        cfg.model, num_classes=meta.num_classes, in_chans=meta.channels, **cfg.model_kwargs
    )
    dims = (input_spec(model) or (None, None))[1]  # a deep stem's conv1 is a Sequential
    if dims is not None and dims != len(meta.image_size):
        kinds = {1: "signals", 2: "images", 3: "volumes"}
        raise ConfigError(
            f"{cfg.model} is a {dims}D network but {meta.name} holds "
            f"{kinds.get(len(meta.image_size), 'data')} of shape {tuple(meta.image_size)}; "
            f"pick a {len(meta.image_size)}D model from `resnet models`"
        )
    if cfg.freeze_bn and not any(isinstance(m, _BATCH_NORMS) for m in model.modules()):  # GN
        raise ConfigError(
            f"freeze_bn keeps BatchNorm statistics fixed, and {cfg.model} has no BatchNorm "
            f"(its norm layers keep no statistics); drop --freeze-bn"
        )
    if cfg.pretrained is not None:
        weights = weight_file(cfg.pretrained)
        check_assumptions(checkpoint_assumptions(weights), model, str(cfg.pretrained))
        report = load_weights(model, weights)
        log(f"pretrained {cfg.pretrained}: {report.describe()}")
    else:
        _warn_transfer_options_without_weights(cfg)
    frozen = freeze_backbone(model, cfg.freeze_stages)
    if sync_bn and cfg.sync_bn:
        from resnet.engine.distributed import convert_sync_batchnorm

        model = convert_sync_batchnorm(model)
    model = model.to(device)
    if cfg.channels_last and len(meta.image_size) == 2:
        model = model.to(memory_format=torch.channels_last)
    return model, frozen


def _warn_transfer_options_without_weights(cfg: TrainConfig) -> None:
    """Fine-tuning options on a randomly initialised network run, but are rarely meant: frozen
    stages keep their random filters, frozen BatchNorm its initial statistics (0 and 1)."""
    given = []
    if cfg.freeze_stages:
        given.append(f"freeze_stages {cfg.freeze_stages} (random stages that never learn)")
    if cfg.freeze_bn:
        given.append("freeze_bn (BatchNorm statistics fixed at 0 and 1)")
    if cfg.backbone_lr_scale != 1:
        given.append(f"backbone_lr_scale {cfg.backbone_lr_scale:g}")
    if given:
        warnings.warn(
            f"{', '.join(given)} without pretrained weights: these fine-tuning options act on "
            "a random network; pass --pretrained FILE, or drop them",
            stacklevel=3,
        )


def init_from_data(model: nn.Module, train_loader: Any, images: int = WHITENING_IMAGES) -> None:
    """Initialisation that needs data, run once before a fresh run's first step.

    A model with a whitened stem (``ResNet9(whitened_stem=True)``, ``resnet.models.whitening``)
    gets its filters from the first ``images`` images of training epoch 0, augmented and
    normalised as the first steps will see them. Other models are left alone. A resumed or
    pretrained model already holds its stem, so callers skip this for them.
    """
    if not getattr(model, "whitened_stem", False):
        return
    batches, count = [], 0
    for x, _ in train_loader:
        batches.append(x)
        count += len(x)
        if count >= images:
            break
    if not batches:
        raise DataError(
            "the training loader yields no batch to whiten the stem from; use more training "
            "images than batch_size, or whitened_stem: false"
        )
    model.whiten_stem(torch.cat(batches)[:images])


def autocast_context(amp: str, device: torch.device) -> Any:
    """bf16 autocast when ``amp`` resolves to bf16 (``auto``: where the device has native
    bfloat16, see ``resnet.device.resolve_precision``), else a no-op context.

    Under autocast the convolutions and matrix products run in bfloat16 while the master
    weights, BatchNorm statistics, the loss (``logits.float()``) and the optimizer state stay
    float32. Measured on a Xeon with AMX: the Fashion-MNIST recipe trains 1.6x faster at the
    same accuracy.
    """
    if resolve_precision(amp, device) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class StepContext:
    """What every training step and evaluation of a run runs in, entered as ``with context:``.

    - bf16 autocast where ``amp`` resolves to bf16 (``autocast_context``);
    - the small-map convolution kernels (``resnet.engine.kernels``) where ``conv_kernels`` is
      ``auto`` on the CPU, unless the model is compiled (the compiler picks its own kernels).

    ``precision`` (``"bf16"`` or ``"off"``) says which precision runs. Reusable, not
    re-entrant: each ``with`` enters and leaves both.
    """

    def __init__(self, amp: str, conv_kernels: str, device: torch.device, *, compiled=False):
        self.precision = resolve_precision(amp, device)
        self.autocast = autocast_context(amp, device)
        use_kernels = conv_kernels == "auto" and device.type == "cpu" and not compiled
        self.kernels = SmallMapConvolutions() if use_kernels else None

    def __enter__(self) -> StepContext:
        self.autocast.__enter__()
        if self.kernels is not None:
            self.kernels.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.kernels is not None:
            self.kernels.__exit__(*exc)
        self.autocast.__exit__(*exc)


def check_same_data(run_dir: Any, meta: Any) -> None:
    """Refuse (``DataError``) to resume a run whose data changed since its last checkpoint: an
    image folder that gained or lost images has other mean/std statistics, so the resumed
    epochs would be normalised otherwise than the first ones, and other classes or sizes would
    not fit the network at all."""
    from resnet.data import DatasetMeta
    from resnet.engine.checkpoint import read_checkpoint_info

    if not (Path(run_dir) / "last.json").is_file():  # stopped within its first epoch
        return
    recorded = read_checkpoint_info(Path(run_dir) / "last").get("data_meta")
    if not recorded:
        return
    before = DatasetMeta.from_dict(recorded)
    changed = [
        f"{name} {getattr(before, name)} -> {getattr(meta, name)}"
        for name in ("class_names", "channels", "image_size", "mean", "std")
        if getattr(before, name) != getattr(meta, name)
    ]
    if changed:
        raise DataError(
            f"the data of {run_dir} changed since its last epoch ({'; '.join(changed)[:300]}); "
            "restore the data the run started on, or start a new run"
        )

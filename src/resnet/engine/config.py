"""The training configuration: one dataclass whose fields say why they exist (as in nanoGPT).

Recipes are YAML files of these fields (``recipes/*.yaml``); the CLI overrides any of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from resnet.data.meta import DEFAULT_VAL_FRACTION
from resnet.errors import ConfigError

__all__ = ["TrainConfig", "list_recipes", "recipe_path"]

_CHOICES = {
    "optimizer": ("sgd", "adamw", "muon"),
    "schedule": ("step", "cosine", "onecycle", "constant"),
    "milestones_unit": ("epochs", "steps"),
    "amp": ("auto", "bf16", "off"),
    "conv_kernels": ("auto", "native"),
}
# Ranges, checked after the types: (low, high, low included, high included); None: unbounded.
_RANGES: dict[str, tuple[Optional[float], Optional[float], bool, bool]] = {
    "epochs": (1, 100_000, True, True),
    "max_steps": (1, None, True, True),
    "time_budget": (0, None, False, True),
    "batch_size": (1, 1_000_000, True, True),
    "lr": (0, 1e4, False, True),
    "momentum": (0, 1, True, False),
    "muon_lr": (0, 1e4, False, True),
    "muon_momentum": (0, 1, True, False),
    "weight_decay": (0, None, True, True),
    "grad_clip": (0, None, False, True),
    "gamma": (0, None, False, True),
    "warmup_epochs": (0, None, True, True),
    "label_smoothing": (0, 1, True, False),
    "random_erasing": (0, 1, True, True),
    "ema": (0, 1, False, False),
    "val_fraction": (0, 1, True, False),
    "train_subset": (1, None, True, True),
    "eval_subset": (1, None, True, True),
    "pad": (0, 1024, True, True),
    "eval_tta_shift": (0, 1024, True, True),
    "image_size": (8, 4096, True, True),
    "num_workers": (0, 256, True, True),
    "num_threads": (1, 4096, True, True),
    "seed": (0, 2**63 - 1, True, True),
    "freeze_stages": (0, 16, True, True),
    "backbone_lr_scale": (0, None, True, True),
    "save_every_steps": (1, None, True, True),
    "curve_every": (1, None, True, True),
}
# Fields that also take these words in place of a number (resolved when a run starts).
_WORDS = {"num_threads": ("free",)}
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass
class TrainConfig:
    """Everything that decides a training run; ``to_dict()`` is written as ``config.yaml``."""

    # --- model
    model: str = "resnet20"  # a name from `resnet models`
    model_kwargs: dict = field(default_factory=dict)  # e.g. {"norm_layer": "group"}
    # --- data
    dataset: str = "fashion-mnist"  # a registered name, an image folder or a MedMNIST .npz
    data_dir: Optional[str] = None  # where the dataset files live (None: the data layer's default)
    train_subset: Optional[int] = None  # train on N images only (fast experiments): the first N,
    # or for data stored class by class (an image folder) N spread evenly over it
    # Fraction of train held out for validation when the source has no val split of its own
    # (which is used whenever present). 0 and no val split: each epoch is scored on the test
    # split, as the paper's curves are (Fig. 4), and best.* is the last epoch, not the best on
    # test (a test score chosen on the test set).
    val_fraction: float = DEFAULT_VAL_FRACTION
    eval_subset: Optional[int] = None  # score at most N val/test images each epoch (as above)
    # The side images are resized to. Image folders: None is their own median size, at most
    # 224 (96x96 photos are not trained at 5.4x the compute of their own size). Arrays
    # (Fashion-MNIST, CIFAR, .npz): None keeps their size; N resizes each image as torchvision's
    # Resize does (Fashion-MNIST at 48 gained 0.45 points at 20 epochs, for 3.1x the FLOPs).
    image_size: Optional[int] = None
    # Random crop after zero padding + horizontal flip (paper, sec. 4.2); an image folder gets
    # random-resized-crop + flip instead (the paper's ImageNet augmentation), so pad is unused.
    augment: bool = True
    pad: int = 4  # pixels of zero padding before the random crop (below the image side)
    # Probability of erasing a random rectangle of each training image (arXiv 1708.04896;
    # resnet.data.erasing), applied with the other augmentation.
    random_erasing: float = 0.0
    num_workers: int = 2  # only image-folder datasets use worker processes
    # --- length
    epochs: int = 10
    max_steps: Optional[int] = None  # stop after N iterations (the paper stops at 64k)
    # Seconds the whole run may take on this machine (data loading, training, per-epoch and final
    # scoring): the step count (at most epochs / max_steps) is planned from a few measured steps
    # before training, and the plan is written into config.yaml as max_steps (resnet.engine.budget).
    time_budget: Optional[float] = None
    batch_size: int = 128  # global batch, split evenly across processes
    # --- optimizer
    # "sgd" | "adamw" | "muon": Muon steps for the filter banks a normalisation follows (their
    # update orthogonalised, their norm fixed; resnet.engine.muon), SGD for everything else.
    optimizer: str = "sgd"
    lr: float = 0.1  # peak learning rate of the global batch
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    muon_lr: float = 0.12  # optimizer muon: peak lr of the filters, scheduled as lr is
    muon_momentum: float = 0.6  # optimizer muon: the filters' (Nesterov) momentum
    # Decay only conv/linear weights: decaying BN scales and biases only shrinks them to zero
    # without regularising anything (Goyal et al. 2017, sec. 5.1).
    no_wd_norm_bias: bool = False
    grad_clip: Optional[float] = None  # max global gradient norm, None: no clipping
    # --- schedule
    schedule: str = "cosine"  # "step" | "cosine" | "onecycle" | "constant"
    milestones: list = field(default_factory=list)  # step schedule: where lr is multiplied by gamma
    milestones_unit: str = "epochs"  # "epochs" or "steps" (the paper: 32k and 48k steps)
    gamma: float = 0.1
    warmup_epochs: float = 0.0  # linear warmup from 0 (onecycle: 0 means 30% of the run)
    # --- regularisation
    label_smoothing: float = 0.0
    ema: Optional[float] = None  # decay of an exponential moving average of the weights
    # --- speed
    amp: str = "auto"  # "auto": bf16 autocast where the device has native bf16 (AMX, CUDA, ...)
    # "auto": CPU convolutions (2D, 3D) with tiny outputs (at most 16 positions in bf16 with AMX,
    # 8 otherwise) run as im2col + matmul, 1.4-6x faster there (resnet.engine.kernels); "native":
    # every convolution through PyTorch/oneDNN.
    conv_kernels: str = "auto"
    channels_last: bool = False  # NHWC memory layout for 4D inputs (faster on GPUs)
    compile: bool = False  # torch.compile the model
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps ("auto" picks the GPU if any)
    # CPU threads for torch (None: torch's default; "free": the CPUs idle when the run starts,
    # for a machine shared with other jobs). The count used is recorded: a resume is bitwise
    # only with the same thread count, since reductions are split by thread.
    num_threads: Union[int, str, None] = None
    sync_bn: bool = False  # under torchrun: BatchNorm statistics of the global batch
    save_every_steps: Optional[int] = None  # also write the resume point every N steps
    # Record the training loss and accuracy every N steps too (curve.csv): the per-iteration
    # training curves of the paper's Figures 1 and 6.
    curve_every: Optional[int] = None
    # --- reproducibility
    seed: int = 0
    deterministic: bool = True  # deterministic kernels (bitwise-repeatable runs on the CPU)
    # --- transfer learning
    pretrained: Optional[str] = None  # weight file (torchvision, timm or ours) to start from
    freeze_stages: int = 0  # freeze the stem and the first K stages
    backbone_lr_scale: float = 1.0  # lr multiplier for everything but the classifier
    freeze_bn: bool = False  # keep every BatchNorm's running statistics fixed
    # --- evaluation
    eval_tta: bool = False  # average logits of the image and its mirror image at test time
    # Test time also averages the image shifted this many pixels left and right (each mirrored
    # too with eval_tta; the uncovered columns reflected): airbench's translate TTA. 0: none.
    eval_tta_shift: int = 0
    # --- output
    runs_dir: str = "runs"
    name: Optional[str] = None  # run folder name (default: "<model>-<dataset>"), numbered if taken
    log_tensorboard: bool = True
    progress: bool = True  # tqdm bars per epoch

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` on a value of the wrong type or range, or one that cannot work:
        every field is checked here, before any data loads or folder is created."""
        if self.amp is False:  # YAML 1.1 reads a bare `amp: off` (or --set amp=off) as false
            self.amp = "off"
        for spec in dataclasses.fields(self):
            value, words = getattr(self, spec.name), _WORDS.get(spec.name, ())
            if value in words:
                continue
            try:
                setattr(self, spec.name, _typed(spec.name, str(spec.type), value))
            except ConfigError as error:
                if not words:
                    raise
                raise ConfigError(f"{error}; or one of: {', '.join(words)}") from None
        for key, choices in _CHOICES.items():
            if getattr(self, key) not in choices:
                raise ConfigError(
                    f"{key} must be one of {', '.join(choices)}, got {getattr(self, key)!r}"
                )
        for key, bounds in _RANGES.items():
            if getattr(self, key) not in _WORDS.get(key, ()):
                _check_range(key, getattr(self, key), *bounds)
        if not _DEVICE.match(self.device):
            raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.random_erasing and not self.augment:
            raise ConfigError("random_erasing needs augment: true; set one of them")
        if self.time_budget is not None and self.compile:
            raise ConfigError(
                "time_budget plans the run from eager steps and cannot foresee compile's "
                "compilation time; drop compile or time_budget"
            )
        if self.schedule == "step" and not self.milestones:
            raise ConfigError("schedule 'step' needs milestones, e.g. milestones: [32000, 48000]")
        _check_milestones(self.milestones)
        if self.name is not None:
            from resnet.run import check_run_name

            check_run_name(self.name)
        from resnet.models import model_entry

        model_entry(self.model)  # an unknown name fails now, not after the data has loaded
        _check_model_kwargs(self.model_kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML/JSON-serialisable values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; an unknown key raises ``ConfigError`` naming the closest field."""
        if not isinstance(values, dict):
            raise ConfigError(f"a config must be a mapping of field: value, got {values!r}")
        types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        names = list(types)
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(str(key).replace("-", "_"), names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "see TrainConfig for the fields"
                raise ConfigError(f"unknown config key {key!r}: {hint}")
        try:
            return cls(**values)
        except TypeError as error:
            raise ConfigError(f"bad config value: {error}") from None

    @classmethod
    def from_yaml(
        cls,
        path: Union[str, os.PathLike, None] = None,
        overrides: Optional[dict[str, Any]] = None,
    ) -> TrainConfig:
        """Read a recipe (None: the defaults) and apply ``overrides`` on top of it."""
        values: dict[str, Any] = {}
        if path is not None:
            values = _read_yaml(Path(path))
        values.update(overrides or {})
        return cls.from_dict(values)


def _check_milestones(milestones: list) -> None:
    """Milestones are positive numbers (epochs or steps) in increasing order: a string, a NaN or
    a list inside the list is one ConfigError, and so is a milestone at or before the start or
    one out of order, which would move the learning rate where nobody asked."""
    for value in milestones:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"milestones must be numbers (epochs or steps), got {value!r}")
        if not 0 < value < float("inf"):
            raise ConfigError(f"milestones must be positive and finite, got {value!r}")
    if any(later <= earlier for earlier, later in zip(milestones, milestones[1:])):
        raise ConfigError(f"milestones must increase, e.g. [32000, 48000]; got {milestones}")


# What a resumed run may not change, and what would change mid-run if it did: a val_fraction
# changed on --resume moved validation images into training and kept scoring "val".
_FIXED_ON_RESUME = {
    "dataset": "the training data",
    "train_subset": "the training data",
    "val_fraction": "the train/validation split",
    "image_size": "the images",
    "seed": "the data order and augmentation",
    "batch_size": "the steps per epoch",
    "model": "the network",
    "model_kwargs": "the network",
}


def resumed_config(saved: Union[str, os.PathLike], overrides: Optional[dict]) -> TrainConfig:
    """A run's saved config with ``overrides`` applied, refusing (``ConfigError``) those that
    would change its data, split or network mid-run; epochs, max_steps and the like may change."""
    before = TrainConfig.from_yaml(saved)
    after = TrainConfig.from_yaml(saved, overrides)
    for key, what in _FIXED_ON_RESUME.items():
        old, new = getattr(before, key), getattr(after, key)
        if old != new:
            raise ConfigError(
                f"--resume continues {Path(saved).parent} as it was trained: {key} is {old!r} "
                f"there, {new!r} given, which would change {what} mid-run; drop it, or start a "
                "new run"
            )
    return after


def list_recipes() -> dict[str, str]:
    """The recipes shipped inside the package: ``{name: first comment line}``."""
    from importlib import resources

    found = {}
    for entry in sorted(resources.files("resnet.recipes").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            first = entry.read_text(encoding="utf-8").splitlines()[:1] or [""]
            found[entry.name[: -len(".yaml")]] = first[0].lstrip("# ").strip()
    return found


def recipe_path(recipe: Union[str, os.PathLike]) -> Path:
    """A recipe file: an existing path as given, else the packaged recipe of that name
    (``fashion-mnist`` or ``fashion-mnist.yaml``), as ultralytics resolves its cfg files."""
    path = Path(recipe)
    if path.exists():
        return path
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    packaged = list_recipes()
    if name in packaged and (path.parent == Path(".") or path.parent.name == "recipes"):
        from importlib import resources

        return Path(str(resources.files("resnet.recipes") / f"{name}.yaml"))
    raise ConfigError(
        f"recipe {recipe} not found; pass a YAML file or a packaged recipe name "
        f"({', '.join(packaged)}; `resnet train --list-recipes`)"
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    from resnet.io import load_yaml

    path = recipe_path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {path} is not a file; pass a YAML file or a recipe name")
    try:
        values = load_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"recipe {path} is not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        reason = getattr(error, "problem", None) or " ".join(str(error).split())[:120]
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"recipe {path} is not valid YAML ({reason}{where})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"recipe {path} must be a mapping of field: value")
    return values


def _typed(key: str, type_name: str, value: Any) -> Any:
    """``value`` checked against the field's annotation (``int``, ``Optional[float]``, ...);
    ints pass as floats, and YAML's "1e-4" (a string in YAML 1.1) as a float."""
    optional = type_name.startswith("Optional[")
    base = type_name[len("Optional[") : -1] if optional else type_name
    if type_name.startswith("Union["):  # Union[int, str, None]: a number, or one of _WORDS
        members = [name.strip() for name in type_name[len("Union[") : -1].split(",")]
        optional, base = "None" in members, members[0]
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key} must be set (a {base}), got null")
    if base == "float":
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{key} must be a number, got {value!r}")
    expected = {"int": int, "bool": bool, "str": str, "dict": dict, "list": list}[base]
    if isinstance(value, float) and base == "int" and value.is_integer():
        value = int(value)  # "epochs: 10.0"; 1.5 stays wrong
    if not isinstance(value, expected) or (base == "int" and isinstance(value, bool)):
        what = {"int": "a whole number", "bool": "true or false", "str": "a string"}
        raise ConfigError(f"{key} must be {what.get(base, 'a ' + base)}, got {value!r}")
    return value


def _check_model_kwargs(kwargs: dict) -> None:
    # A checkpoint records model_kwargs as JSON to rebuild the network from the file alone.
    for key in ("in_chans", "num_classes"):
        if key in kwargs:  # create_model got it twice: a TypeError after the data had loaded
            raise ConfigError(
                f"model_kwargs {key!r} is the dataset's (its channels and classes); drop it"
            )
    for key, value in kwargs.items():
        try:
            json.dumps({str(key): value})
        except (TypeError, ValueError):
            raise ConfigError(
                f"model_kwargs {key!r} is not a plain value ({value!r}), so no checkpoint could "
                "record it; pass its string form, e.g. norm_layer: group"
            ) from None


def _check_range(key, value, low, high, low_in, high_in) -> None:
    if value is None:
        return
    values = value if isinstance(value, list) else [value]
    for item in values:
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            raise ConfigError(f"{key} must hold numbers, got {item!r}")
        too_low = low is not None and (item < low if low_in else item <= low)
        too_high = high is not None and (item > high if high_in else item >= high)
        if too_low or too_high:
            left, right = "[" if low_in else "(", "]" if high_in else ")"
            low_text = "-inf" if low is None else low
            high_text = "inf" if high is None else high
            raise ConfigError(
                f"{key} must be in {left}{low_text}, {high_text}{right}, got {item!r}"
            )

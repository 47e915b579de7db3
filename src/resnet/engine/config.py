"""The training configuration: one dataclass whose fields say why they exist (as in nanoGPT).

Recipes are YAML files of these fields (``recipes/*.yaml``); the CLI overrides any of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from resnet.errors import ConfigError

__all__ = ["TrainConfig"]

_CHOICES = {
    "optimizer": ("sgd", "adamw"),
    "schedule": ("step", "cosine", "onecycle", "constant"),
    "milestones_unit": ("epochs", "steps"),
    "amp": ("auto", "bf16", "off"),
    "device": ("auto", "cpu", "cuda", "mps"),
}


@dataclass
class TrainConfig:
    """Everything that decides a training run; ``to_dict()`` is written as ``config.yaml``."""

    # --- model
    model: str = "resnet20"  # a name from `resnet models`
    model_kwargs: dict = field(default_factory=dict)  # e.g. {"norm_layer": "group"}
    # --- data
    dataset: str = "fashion-mnist"  # a registered name, an image folder or a MedMNIST .npz
    data_dir: Optional[str] = None  # where the dataset files live (None: the data layer's default)
    train_subset: Optional[int] = None  # use only the first N training images (fast experiments)
    # Fraction of train held out for validation when the source has no val split. 0 means no
    # validation: each epoch is scored on the test split, as the paper's curves are (Fig. 4).
    val_fraction: float = 0.0
    eval_subset: Optional[int] = None  # score only the first N val/test images each epoch
    augment: bool = True  # random crop after zero padding + horizontal flip (paper, sec. 4.2)
    pad: int = 4  # pixels of zero padding before the random crop
    num_workers: int = 2  # only image-folder datasets use worker processes
    # --- length
    epochs: int = 10
    max_steps: Optional[int] = None  # stop after N iterations (the paper stops at 64k)
    batch_size: int = 128  # global batch, split evenly across processes
    # --- optimizer
    optimizer: str = "sgd"  # "sgd" | "adamw"
    lr: float = 0.1  # peak learning rate of the global batch
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
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
    amp: str = "auto"  # "auto": bf16 autocast on a CUDA GPU that supports it, off on the CPU
    channels_last: bool = False  # NHWC memory layout for 4D inputs (faster on GPUs)
    compile: bool = False  # torch.compile the model
    device: str = "auto"  # "auto" picks the GPU when there is one
    num_threads: Optional[int] = None  # CPU threads for torch (None: torch's default)
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
    # --- output
    runs_dir: str = "runs"
    name: Optional[str] = None  # run folder name (default: "<model>-<dataset>"), numbered if taken
    log_tensorboard: bool = True
    progress: bool = True  # tqdm bars per epoch

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` on a value that cannot work."""
        if self.amp is False:  # YAML 1.1 reads a bare `amp: off` (or --set amp=off) as false
            self.amp = "off"
        for key, choices in _CHOICES.items():
            if getattr(self, key) not in choices:
                raise ConfigError(
                    f"{key} must be one of {', '.join(choices)}, got {getattr(self, key)!r}"
                )
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        for key, value in positive.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{key} must be a positive number, got {value!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1 or null, got {self.max_steps}")
        if self.train_subset is not None and self.train_subset < 1:
            raise ConfigError(f"train_subset must be >= 1 or null, got {self.train_subset}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ConfigError(f"ema must be a decay in (0, 1) or null, got {self.ema}")
        if self.schedule == "step" and not self.milestones:
            raise ConfigError("schedule 'step' needs milestones, e.g. milestones: [32000, 48000]")
        if self.freeze_stages < 0 or self.backbone_lr_scale < 0:
            raise ConfigError("freeze_stages and backbone_lr_scale must be >= 0")
        if not isinstance(self.model_kwargs, dict):
            raise ConfigError(f"model_kwargs must be a mapping, got {self.model_kwargs!r}")

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
        values = {key: _coerce(types[key], key, value) for key, value in values.items()}
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


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"recipe {path} not found; pass a YAML file such as recipes/*.yaml")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"recipe {path} is not valid YAML ({str(error)[:120]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"recipe {path} must be a mapping of field: value")
    return values


def _coerce(type_name: str, key: str, value: Any) -> Any:
    # YAML reads "1e-4" as a string (YAML 1.1 wants "1.0e-4"); a float field takes it anyway.
    if isinstance(value, str) and "float" in type_name:
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool) and type_name == "float":
        return float(value)
    return value

"""resnet: residual networks made real.

    >>> import resnet
    >>> model = resnet.create_model("resnet20", num_classes=10, in_chans=1)

Heavy parts (training, experiments, export) are imported on first use, so ``import resnet``
stays fast.
"""

from resnet.errors import ConfigError, DataError, ResnetError, UnknownModelError, WeightsError
from resnet.models import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    ResidualBlock,
    create_model,
    list_models,
    load_weights,
    register_model,
)

__version__ = "0.1.0"

# Public functions whose modules import heavy dependencies: resolved on first use.
_LAZY = {
    "train": "resnet.engine.train",
    "evaluate": "resnet.deploy.evaluate",
    "predict": "resnet.deploy.predict",
    "create_model_from_checkpoint": "resnet.engine.checkpoint",
    "load_dataset": "resnet.data",
    "gradcam": "resnet.explain.gradcam",
    "optimize_for_inference": "resnet.deploy.optimize",
    "export_model": "resnet.deploy.export",
    "quantize_int8": "resnet.deploy.quantize",
    "OnnxModule": "resnet.deploy.runtime",
    "Run": "resnet.run",
}


# Subpackages, imported on first use as torchvision's are: `resnet.detection.fpn_backbone(...)`.
_SUBPACKAGES = ("models", "data", "engine", "experiments", "detection", "deploy", "explain", "cli")


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"resnet.{name}")
    raise AttributeError(f"module 'resnet' has no attribute {name!r}")


__all__ = [
    "ResidualBlock",
    "BasicBlock",
    "Bottleneck",
    "PreActBasicBlock",
    "PreActBottleneck",
    "create_model",
    "list_models",
    "load_weights",
    "register_model",
    "ResnetError",
    "ConfigError",
    "UnknownModelError",
    "DataError",
    "WeightsError",
    *_LAZY,
]

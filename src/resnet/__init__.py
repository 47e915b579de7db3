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
]

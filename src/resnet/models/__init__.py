"""The model zoo: blocks, networks, the registry and weight loading.

Importing this package imports every builder module, which fills the registry.
"""

# The builder modules register their models on import (the registry imports none of them).
from resnet.models import (  # noqa: F401
    antialiased,
    bit,
    cifar,
    clip,
    fast,
    imagenet,
    resnet3d,
    resnet_d,
    senet,
    video,
)
from resnet.models.blocks import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    ResidualBlock,
)
from resnet.models.compat import legacy_model_kwargs
from resnet.models.pretrained import LoadReport, check_finite, load_weights, read_state_dict
from resnet.models.registry import create_model, list_models, model_entry, register_model
from resnet.models.resnet import ResNet

__all__ = [
    "ResidualBlock",
    "BasicBlock",
    "Bottleneck",
    "PreActBasicBlock",
    "PreActBottleneck",
    "ResNet",
    "create_model",
    "list_models",
    "model_entry",
    "register_model",
    "load_weights",
    "read_state_dict",
    "check_finite",
    "LoadReport",
    "legacy_model_kwargs",
]

"""The model zoo: blocks, networks, the registry and weight loading."""

from resnet.models.blocks import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    ResidualBlock,
)
from resnet.models.pretrained import LoadReport, load_weights, read_state_dict
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
    "LoadReport",
]

"""Deployment: BatchNorm folding and fast inference, export to ONNX / TorchScript / pt2, int8
ONNX, and running ONNX files as modules."""

from resnet.deploy.optimize import fold_batch_norms, optimize_for_inference

__all__ = [
    "optimize_for_inference",
    "fold_batch_norms",
    "export_model",
    "quantize_int8",
    "OnnxModule",
]

# export pulls in onnx lazily anyway, but keep `import resnet.deploy` light.
_LAZY = {
    "export_model": "resnet.deploy.export",
    "quantize_int8": "resnet.deploy.quantize",
    "OnnxModule": "resnet.deploy.runtime",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'resnet.deploy' has no attribute {name!r}")

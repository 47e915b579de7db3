"""Deployment: BatchNorm folding and fast inference, export to ONNX / TorchScript / pt2."""

from resnet.deploy.optimize import fold_batch_norms, optimize_for_inference

__all__ = ["optimize_for_inference", "fold_batch_norms", "export_model"]


def __getattr__(name: str):
    # export pulls in onnx lazily anyway, but keep `import resnet.deploy` light.
    if name == "export_model":
        from resnet.deploy.export import export_model

        return export_model
    raise AttributeError(f"module 'resnet.deploy' has no attribute {name!r}")

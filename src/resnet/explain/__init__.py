"""Explaining predictions: Grad-CAM heatmaps and their overlays on the input."""

from resnet.explain.gradcam import explain_images, gradcam, resolve_target_layer

__all__ = ["gradcam", "explain_images", "resolve_target_layer"]

"""The experiments behind the ResNet story, each a function returning plain data, with a
separate plotting function per experiment (``plotting.py``) and the demo that runs them all.

    gradflow     gradient norm by depth, plain vs residual, with/without BN (arXiv 1512.03385)
    degradation  deeper plain nets train worse; deeper ResNets do not (Figure 6 of 1512.03385)
    landscape    filter-normalized loss surfaces (Li et al. 2018, arXiv 1712.09913)
    lesion       deleting single blocks (Veit et al. 2016, arXiv 1605.06431)
    block        the explainer's ResidualBlock(3) and its identity fraction

Submodules are imported on use; ``import resnet.experiments`` stays light.
"""

__all__ = ["block", "gradflow", "degradation", "landscape", "lesion", "plotting", "report", "demo"]

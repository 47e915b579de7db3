"""timm's hub ``config.json``: the net a file was saved from, where its keys cannot show it.

A timm hub folder (``timm/resnetaa50d.sw_in12k_ft_in1k``, or ``save_for_hf``'s output) holds
``model.safetensors`` (or ``pytorch_model.bin``) and a ``config.json`` naming its
``architecture``. For the anti-aliased nets that name is the only evidence there is: their
low-pass filters have no parameters, so ``resnetaa50d``'s tensors fit ``resnet50d`` key for key
and would compute another network there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from resnet.models.hf_names import read_config_json

__all__ = ["timm_architecture", "anti_alias_of"]


def timm_architecture(source: Optional[Path]) -> Optional[str]:
    """The ``architecture`` of a timm ``config.json`` beside ``source``; None without one (a
    transformers config names no architecture: ``hf_names`` reads those)."""
    path = None if source is None else source.parent / "config.json"
    if path is None or not path.is_file():
        return None
    config = read_config_json(path)
    architecture = config.get("architecture") if isinstance(config, dict) else None
    return architecture if isinstance(architecture, str) else None


def anti_alias_of(architecture: str) -> Optional[str]:
    """The ``anti_alias`` a timm net of this name is built with (``antialiased.py``)."""
    name = architecture.split(".", 1)[0]  # "resnetaa50d.sw_in12k" names a tag too
    if "resnetblur" in name:
        return "blur"
    if "resnetaa" in name or "resnextaa" in name:
        return "avg"
    return None

"""Device choice shared by every command: ``--device auto|cpu|cuda|cuda:N|mps``."""

from __future__ import annotations

import torch

from resnet.errors import ConfigError

__all__ = ["resolve_device", "has_fast_bfloat16"]


def resolve_device(name: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; an unavailable device is a ``ConfigError``."""
    name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    kind = name.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is visible; use --device cpu")
    if kind == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ConfigError("device 'mps' requested but MPS is not available; use --device cpu")
    if kind not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}: choose auto, cpu, cuda or mps")
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def has_fast_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matrix math natively (faster than float32): CUDA GPUs
    with bf16 support, and CPUs with AVX512-BF16 or AMX (measured on an AVX512-BF16 CPU:
    training steps 1.4x-1.6x faster, resnet50 inference at batch 1 2.1x-2.4x)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # Private probes (torch >= 2.3); an older torch simply keeps float32.
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return False

"""Device choice shared by every command: ``--device auto|cpu|cuda|cuda:N|mps``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from resnet.errors import ConfigError

__all__ = ["resolve_device", "has_fast_bfloat16", "cpu_capabilities", "resolve_precision"]


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


def cpu_capabilities() -> dict[str, Any]:
    """What this CPU offers for training: its name, torch's vector ISA (``AVX2``, ``AVX512``,
    ...) and whether it has native bfloat16 (AVX512-BF16 dot products, AMX tiles).

    The machines this project runs on change from session to session (a Xeon with AMX in one,
    an EPYC with AVX2 only in another), so precision is chosen from this, never assumed.
    """
    flags = _cpu_flags()
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    avx512_bf16 = bool(probe()) if probe is not None else "avx512_bf16" in flags
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    amx = bool(probe()) if probe is not None else "amx_bf16" in flags
    get_isa = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")
    return {
        "name": _cpu_name(),
        "isa": get_isa(),
        "avx512_bf16": avx512_bf16,
        "amx": amx,
        "native_bfloat16": avx512_bf16 or amx,
    }


def has_fast_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matrix math natively (faster than float32): CUDA GPUs
    with bf16 support, and CPUs with AVX512-BF16 or AMX (measured on an AVX512-BF16 CPU:
    training steps 1.4x-1.6x faster, resnet50 inference at batch 1 2.1x-2.4x)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(cpu_capabilities()["native_bfloat16"])
    return False


def resolve_precision(amp: str, device: torch.device) -> str:
    """``"bf16"`` or ``"off"`` for a config's ``amp``: ``auto`` is bf16 autocast where the
    device has native bfloat16 (recent CPUs, CUDA GPUs), float32 elsewhere."""
    if amp == "auto":
        return "bf16" if has_fast_bfloat16(device) else "off"
    if amp not in ("bf16", "off"):
        raise ConfigError(f"amp must be auto, bf16 or off, got {amp!r}")
    return amp


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpu_flags() -> set[str]:
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _cpu_name() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"

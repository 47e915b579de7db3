"""Device choice shared by every command: ``--device auto|cpu|cuda|cuda:N|mps``."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Optional, Union

import torch

from resnet.checks import whole_number
from resnet.errors import ConfigError

__all__ = [
    "resolve_device", "has_fast_bfloat16", "cpu_capabilities", "resolve_precision", "free_cpus",
    "resolve_threads", "allowed_cpus", "busy_cpu_seconds",
]  # fmt: skip

# torch's own thread count before any run changed it: the most that ``threads="free"`` takes.
_DEFAULT_THREADS = torch.get_num_threads()


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


def free_cpus(sample_seconds: float = 0.5) -> int:
    """How many of the CPUs this process may run on are idle now (at least 1).

    Idle time is sampled from ``/proc/stat`` over ``sample_seconds``; a CPU counts as free
    when the idle shares add up to it, less a fifth of a CPU of slack (so one core spinning at
    100% on a 2-core machine leaves 1, and stray 5% blips still leave 2). Where there is no
    ``/proc/stat`` (macOS, Windows), the 1-minute load average stands in, or all CPUs.

    Why: oneDNN and OpenMP threads wait for each other at every operation, so one thread on a
    busy core stalls them all. On 2 cores with one spinning at 100%, a bf16 resnet9_slim step
    took 775-967 ms with 2 threads and 289-309 ms with 1 (163-175 ms idle; Xeon with AMX,
    2026-12-02, ``python bench/shared_cpu.py``).
    """
    allowed = allowed_cpus()
    first = _cpu_times()
    if first is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return max(1, min(len(allowed), math.floor(len(allowed) - load + 0.2)))
    time.sleep(sample_seconds)
    second = _cpu_times() or {}
    idle = 0.0
    for cpu in allowed:
        (idle0, total0), (idle1, total1) = first.get(cpu, (0, 0)), second.get(cpu, (0, 0))
        elapsed = total1 - total0
        idle += (idle1 - idle0) / elapsed if elapsed > 0 else 1.0
    return max(1, min(len(allowed), math.floor(idle + 0.2)))


def resolve_threads(threads: Union[int, str, None], processes: int = 1) -> int:
    """A config's ``num_threads`` as this process's thread count: a number stays (at most the
    CPUs this process may use), ``None`` is torch's current count, ``"free"`` the CPUs idle now
    (``free_cpus``) shared among the ``processes`` of a job on this machine, at most torch's
    default count."""
    if threads == "free":
        return max(1, min(free_cpus() // max(1, processes), _DEFAULT_THREADS))
    if threads is None:
        return torch.get_num_threads()
    threads = whole_number("threads", threads, also=" or 'free'")
    cpus = len(allowed_cpus())
    if threads > cpus:  # oversubscribed oneDNN/OpenMP threads wait on each other at every op
        raise ConfigError(
            f"threads {threads} is more than the {cpus} CPUs this process may use, which slows "
            f"every step many times over; use 1 to {cpus}, or 'free' (--threads)"
        )
    return threads


def busy_cpu_seconds() -> Optional[float]:
    """Seconds the CPUs this process may run on have spent busy (not idle) since boot, from
    ``/proc/stat``; None where it cannot be read. Two readings, less this process's own
    ``time.process_time()`` between them, give what other jobs used in that time."""
    times = _cpu_times()
    if times is None:
        return None
    allowed = set(allowed_cpus())
    busy = sum(total - idle for cpu, (idle, total) in times.items() if cpu in allowed)
    return busy / os.sysconf("SC_CLK_TCK")


def allowed_cpus() -> list[int]:
    """The indices of the CPUs this process may run on (its affinity set where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _cpu_times() -> Optional[dict[int, tuple[int, int]]]:
    """{cpu index: (idle ticks, total ticks)} from /proc/stat; None where it cannot be read."""
    try:
        lines = Path("/proc/stat").read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    times = {}
    for line in lines:
        name, *fields = line.split() or [""]
        if name.startswith("cpu") and name[3:].isdigit() and len(fields) >= 4:
            ticks = [int(value) for value in fields[:8]]  # user nice system idle iowait irq ...
            times[int(name[3:])] = (ticks[3] + (ticks[4] if len(ticks) > 4 else 0), sum(ticks))
    return times or None


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

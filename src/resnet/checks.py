"""Argument checks shared by every layer: one wording, one definition of a whole number.

A count given as ``1.5`` or ``True`` used to fail deep inside torch, or, worse, be truncated
silently; numpy integers (``labels.max() + 1``) are whole numbers too and come back as ``int``.
"""

from __future__ import annotations

import numbers
from typing import Any

from resnet.errors import ConfigError

__all__ = ["distinct", "is_whole", "switches", "whole_number"]


def is_whole(value: Any) -> bool:
    """True for ints and numpy integers, False for bools, floats and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def whole_number(name: str, value: Any, minimum: int = 1, also: str = "") -> int:
    """``value`` as an ``int`` if it is a whole number >= ``minimum``, else a ``ConfigError``
    naming ``name`` (``also`` adds another accepted spelling, e.g. "or 'free'")."""
    if not is_whole(value) or value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}{also}, got {value!r}")
    return int(value)


def distinct(name: str, values: Any) -> list:
    """``values`` as a list if no value repeats, else a ``ConfigError`` naming ``name``: a seed
    or a network given twice would run twice and pass for two independent results."""
    values = list(values)
    repeated = sorted({repr(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"{name} {values} repeat {', '.join(repeated)}; give each once")
    return values


def switches(**values: Any) -> None:
    """Refuse any of ``values`` (on/off arguments by name) that is not a bool: ``"false"`` is a
    true string, and would have turned the option on."""
    for name, value in values.items():
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")

"""Argument types shared by the sub-commands: a refusal at parse time names the flag and the range.

``float`` alone lets ``nan`` and ``inf`` through (``float("nan")`` is a float), and a NaN
learning rate or tolerance then runs to the end and reports nonsense. Every real-valued flag
uses ``real(...)`` instead (tests/cli/test_cli_arguments.py walks the parser to keep it so).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Optional, Union

__all__ = ["real", "reals", "count"]


def real(
    low: Optional[float] = None, high: Optional[float] = None, *, above: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: a finite number from ``low`` to ``high`` (either end open when
    None; ``above=True`` excludes ``low`` itself, as a learning rate must be > 0)."""
    if low is not None and high is not None:
        wanted = f"from {low:g} to {high:g}" if not above else f"> {low:g} and <= {high:g}"
    elif low is not None:
        wanted = f"> {low:g}" if above else f">= {low:g}"
    else:
        wanted = f"<= {high:g}" if high is not None else ""
    expected = f"a finite number {wanted}".rstrip()

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        too_low = low is not None and (value <= low if above else value < low)
        too_high = high is not None and value > high
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = "real"  # argparse names the type in some messages
    return parse


def reals(
    how_many: Union[int, tuple[int, ...]],
    low: Optional[float] = None,
    high: Optional[float] = None,
    *,
    above: bool = False,
) -> Callable[[str], tuple[float, ...]]:
    """An argparse ``type``: ``how_many`` (a count, or the counts allowed) comma-separated
    ``real(low, high, above=above)`` numbers in one argument (``--mean 0.5,0.5,0.5``)."""
    one = real(low, high, above=above)
    counts = (how_many,) if isinstance(how_many, int) else tuple(how_many)
    try:
        one("nan")
    except argparse.ArgumentTypeError as error:  # "expected a finite number from 0 to 1, ..."
        wanted = str(error).split(", got")[0].removeprefix("expected ")

    def parse(text: str) -> tuple[float, ...]:
        parts = text.split(",")
        try:
            if len(parts) not in counts:
                raise argparse.ArgumentTypeError(text)
            return tuple(one(part) for part in parts)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"expected {' or '.join(map(str, counts))} comma-separated values, "
                f"each {wanted}, got {text!r}"
            ) from None

    parse.__name__ = "real"  # the walk over real flags checks it refuses nan and inf too
    return parse


def count(low: int = 1, high: Optional[int] = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high`` (None: no upper end).
    ``--seeds 0`` used to run no seed and fail at the summary, after the machine had been
    measured; ``--seed -1`` reached numpy as a ValueError (tests/cli/test_cli_arguments.py
    walks the parser so that every whole-number flag is parsed so)."""
    wanted = f"from {low} to {high}" if high is not None else f">= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected a whole number {wanted}, got {text!r}")
        return value

    parse.__name__ = "count"
    return parse

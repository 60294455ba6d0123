"""Argument types for the command line, checked like manifest fields.

Each is an argparse `type=`: a bad value becomes argparse's usage error naming the option
(exit 2), never a traceback or a value silently ignored. Numbers must be finite (`nan`, `inf`
are refused where Python's float() would take them) and inside the documented range.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["count", "fraction", "number", "numbers"]


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def number(*, minimum: float | None = None, above: float | None = None) -> Callable[[str], float]:
    """A finite float, at least `minimum` or strictly above `above`."""

    def parse(text: str) -> float:
        value = _float(text)
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum:g}, got {text!r}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"expected a number > {above:g}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def fraction(*, below_one: bool = False) -> Callable[[str], float]:
    """A finite float in [0, 1], or [0, 1) when `below_one`."""

    def parse(text: str) -> float:
        value = _float(text)
        if value < 0 or value > 1 or (below_one and value == 1):
            upper = "below 1" if below_one else "at most 1"
            raise argparse.ArgumentTypeError(f"expected a fraction >= 0 and {upper}, got {text!r}")
        return value

    parse.__name__ = "fraction"
    return parse


def count(*, minimum: int = 1, maximum: int | None = None) -> Callable[[str], int]:
    """An integer in [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"expected a whole number {bound}, got {text!r}")
        return value

    parse.__name__ = "count"
    return parse


def numbers(kind: Callable[[str], float | int]) -> Callable[[str], list]:
    """Comma-separated positive values of `kind` (a type from this module or int)."""

    def parse(text: str) -> list:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
        values = []
        for part in parts:
            try:
                value = kind(part)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"expected comma-separated numbers, got {text!r}"
                ) from None
            if value <= 0:
                raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
            values.append(value)
        return values

    parse.__name__ = "numbers"
    return parse

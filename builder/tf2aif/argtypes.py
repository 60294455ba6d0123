"""Argument types for the command line, checked like manifest fields.

Each is an argparse `type=`: a bad value becomes argparse's usage error naming the option
(exit 2), never a traceback or a value silently ignored. Numbers must be finite (`nan`, `inf`
are refused where Python's float() would take them) and inside the documented range.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

__all__ = ["count", "dns_label", "fraction", "number", "numbers", "quantity", "resource_name"]


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


# Kubernetes' own grammars (k8s.io/apimachinery: resource.Quantity, validation.IsDNS1123Label,
# IsQualifiedName for extended resource names)
_QUANTITY = re.compile(r"(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[kMGTPE]i?|[mun]|Ki)?")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_RESOURCE = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)


def quantity(text: str) -> str:
    """A Kubernetes resource quantity such as 500m, 2, 512Mi, 1.5Gi."""
    if not _QUANTITY.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected a Kubernetes quantity such as 500m, 2, 512Mi or 1.5Gi, got {text!r}"
        )
    return text


def dns_label(text: str) -> str:
    """A DNS-1123 label (namespaces, names): lowercase letters, digits, '-', at most 63."""
    if len(text) > 63 or not _LABEL.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected a DNS-1123 label (lowercase letters, digits and '-', at most 63"
            f" characters), got {text!r}"
        )
    return text


def resource_name(text: str) -> str:
    """A Kubernetes extended resource name such as xilinx.com/fpga-xilinx_u50_gen3x16."""
    name = text.rsplit("/", 1)[-1]
    if len(text) > 253 or len(name) > 63 or not _RESOURCE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected a resource name such as vendor.com/device, got {text!r}"
        )
    return text

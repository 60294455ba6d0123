"""Precision fallback: when a quantized variant fails the fidelity gate, try more-float candidates.

A candidate is one way the converter can build the variant. They are tried in a fixed order,
from the cheapest (everything quantized) to the most float, and the first whose artifact passes
the gate is published; when none passes, nothing is, and the variant fails with one line naming
every candidate tried and its figure.

  int8   full            every layer int8, weights per channel where the converter offers it
         float-io        + the first and last compute layers (and what feeds the first) in float
         float-sensitive + the layers a per-layer error measurement ranks worst, in float
  fp16   full            every layer fp16
         float-sensitive + what rounds worst in fp16 kept fp32: the precision-sensitive ops
                           (onnxruntime: sigmoid, softmax, exp, reductions, normalisation) or
                           the constants of elementwise ops (openvino: scales, shifts, biases)

Which candidates a backend offers is its own table (`backends.FALLBACKS`); a backend that offers
none for a precision is tried once, as before. `fidelity.fallback: false` turns the loop off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FIRST",
    "ORDER",
    "Attempt",
    "candidates_for",
    "chosen",
    "failure_line",
    "figure_of",
    "float_summary",
    "to_record",
]

FIRST = "full"
ORDER = {"int8": ("full", "float-io", "float-sensitive"), "fp16": ("full", "float-sensitive")}
SHOWN_LAYERS = 5  # float layers named in a summary; the rest are counted


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One candidate's outcome: did its artifact pass the gate, with which figure."""

    candidate: str
    passed: bool
    figure: str  # the failing checks, e.g. "accuracy_drop 0.307 > 0.01"; "" when it passed
    float_layers: tuple[str, ...] = ()
    layers: int | None = None  # compute layers in the model, when the converter counts them


def candidates_for(precision: str, offered: Sequence[str], *, allowed: bool) -> tuple[str, ...]:
    """The candidates to try, in ORDER: always `full`, then what the backend offers."""
    if not allowed:
        return (FIRST,)
    return tuple(c for c in ORDER.get(precision, (FIRST,)) if c == FIRST or c in offered)


def chosen(attempts: Sequence[Attempt]) -> Attempt | None:
    """The attempt to publish: the first (cheapest) that passed, or None."""
    return next((attempt for attempt in attempts if attempt.passed), None)


def failure_line(attempts: Sequence[Attempt]) -> str:
    """Why no candidate was published, every one tried with its figure."""
    tried = "; ".join(f"{a.candidate}: {a.figure or 'failed'}" for a in attempts)
    return f"no candidate passed the fidelity gate ({tried})"


def float_summary(precision: str, attempt: Attempt) -> str:
    """What stayed float, for labels and tables: 'int8, 3 of 57 layers float: dense_1, ...'."""
    if attempt.candidate == FIRST or not attempt.float_layers:
        return f"{precision}, all layers"
    names = list(attempt.float_layers[:SHOWN_LAYERS])
    if len(attempt.float_layers) > SHOWN_LAYERS:
        names.append(f"+{len(attempt.float_layers) - SHOWN_LAYERS} more")
    of = f" of {attempt.layers}" if attempt.layers else ""
    kind = "fp32" if precision == "fp16" else "float"
    return (
        f"{precision} ({attempt.candidate}), {len(attempt.float_layers)}{of} layers "
        f"{kind}: {', '.join(names)}"
    )


def figure_of(report: Mapping[str, Any]) -> str:
    """The failing checks of a fidelity.json document, as 'metric measured op threshold'."""
    failing = [
        f"{c['metric']} {_number(c['measured'])} {_negated(c['op'])} {c['threshold']:g}"
        for c in report.get("checks", ())
        if c.get("passed") is False
    ]
    return ", ".join(failing)


def _negated(op: str) -> str:
    return {"<=": ">", ">=": "<"}[op]


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def to_record(attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
    """The attempts as the artifact's options and fidelity.json keep them."""
    return [
        {
            "candidate": a.candidate,
            "passed": a.passed,
            "figure": a.figure,
            "float_layers": list(a.float_layers),
            "layers": a.layers,
        }
        for a in attempts
    ]

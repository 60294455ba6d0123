"""Server-side stage split from a Prometheus /metrics page: the change of each stage histogram's
_sum and _count over a run gives the mean time per request spent in that stage."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["StageDelta", "parse_samples", "stage_deltas", "stage_totals"]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, kw_only=True)
class StageDelta:
    count: int
    sum_s: float

    @property
    def mean_ms(self) -> float:
        return self.sum_s / self.count * 1e3 if self.count else float("nan")

    def to_dict(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "sum_s": round(self.sum_s, 6),
            "mean_ms": round(self.mean_ms, 4),
        }


def parse_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(metric name, labels, value) for every sample line of a text exposition page."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        samples.append((name, dict(_LABEL.findall(labels or "")), number))
    return samples


def stage_totals(text: str, *, model: str | None = None) -> dict[str, tuple[float, float]]:
    """stage -> (count, sum) of every histogram with a `stage` label (summed over other labels).

    Only one histogram family is used: the first whose samples carry a `stage` label, so a server
    exporting two such families (say seconds and bytes) does not mix them.
    """
    family = None
    totals: dict[str, list[float]] = {}
    for name, labels, value in parse_samples(text):
        if "stage" not in labels or not name.endswith(("_sum", "_count")):
            continue
        base, _, suffix = name.rpartition("_")
        if family is None:
            family = base
        if base != family or (model is not None and labels.get("model", model) != model):
            continue
        entry = totals.setdefault(labels["stage"], [0.0, 0.0])
        entry[0 if suffix == "count" else 1] += value
    return {stage: (count, total) for stage, (count, total) in totals.items()}


def stage_deltas(
    before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]
) -> dict[str, StageDelta]:
    deltas = {}
    for stage, (count, total) in after.items():
        count0, total0 = before.get(stage, (0.0, 0.0))
        deltas[stage] = StageDelta(count=int(count - count0), sum_s=total - total0)
    return deltas

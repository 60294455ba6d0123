"""Latency statistics, a fixed log-spaced histogram and the stability rule for windows."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "HISTOGRAM_BOUNDS_MS",
    "LatencyStats",
    "fit_cold_start",
    "histogram",
    "keep_samples",
    "summarize",
    "within",
]

# Upper bucket bounds in ms: 0.01 ms .. ~100 s, 20 buckets per decade (12% wide), so any two result
# files share buckets and can be merged or compared; the last bucket is open-ended.
HISTOGRAM_BOUNDS_MS: tuple[float, ...] = tuple(
    round(10 ** (exponent / 20), 6) for exponent in range(-40, 101)
)


@dataclass(frozen=True, kw_only=True)
class LatencyStats:
    """Latency summary of one run, in milliseconds."""

    count: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float

    def to_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def summarize(latencies_ms: Sequence[float]) -> LatencyStats:
    """Percentiles use linear interpolation between order statistics (numpy's default)."""
    if not latencies_ms:
        nan = math.nan
        return LatencyStats(
            count=0, mean=nan, std=nan, min=nan, p50=nan, p90=nan, p95=nan, p99=nan, max=nan
        )
    values = np.asarray(latencies_ms, dtype=np.float64)
    p50, p90, p95, p99 = np.percentile(values, [50, 90, 95, 99])
    return LatencyStats(
        count=int(values.size),
        mean=_round(values.mean()),
        std=_round(values.std()),
        min=_round(values.min()),
        p50=_round(p50),
        p90=_round(p90),
        p95=_round(p95),
        p99=_round(p99),
        max=_round(values.max()),
    )


def histogram(latencies_ms: Sequence[float]) -> list[int]:
    """Counts per bucket of HISTOGRAM_BOUNDS_MS, plus one overflow bucket at the end."""
    counts = np.bincount(
        np.searchsorted(HISTOGRAM_BOUNDS_MS, np.asarray(latencies_ms, dtype=np.float64)),
        minlength=len(HISTOGRAM_BOUNDS_MS) + 1,
    )
    return [int(c) for c in counts]


def keep_samples(latencies_ms: Sequence[float], limit: int, *, seed: int = 0) -> list[float]:
    """At most `limit` raw samples, a uniform random subset (seeded, so reruns keep the same)."""
    if len(latencies_ms) <= limit:
        return [_round(v) for v in latencies_ms]
    picked = random.Random(seed).sample(range(len(latencies_ms)), limit)
    return [_round(latencies_ms[i]) for i in sorted(picked)]


def within(values: Sequence[float], tolerance: float) -> bool:
    """True when every value lies within `tolerance` (relative) of the others: max <= (1+t) min."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) != len(values) or not finite:
        return False
    low, high = min(finite), max(finite)
    return high <= low * (1 + tolerance) if low > 0 else high == low


def _round(value: float) -> float:
    return round(float(value), 4)


COLD_TAUS_S = tuple(0.001 * 1.25**k for k in range(31))  # 1 ms .. 0.8 s


def fit_cold_start(warm_s: float, points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(extra, tau) of cpu(gap) = warm + extra (1 - e^(-gap / tau)): the CPU a request costs
    after `gap` seconds of idleness (caches and predictors lost to other work, a halted vCPU
    woken). Least squares in extra for each tau of a log grid; extra >= 0."""
    best = (math.inf, 0.0, COLD_TAUS_S[0])
    for tau in COLD_TAUS_S:
        xs = [1.0 - math.exp(-gap / tau) for gap, _ in points]
        ys = [cpu - warm_s for _, cpu in points]
        extra = max(sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs), 0.0)
        error = sum((y - extra * x) ** 2 for x, y in zip(xs, ys, strict=True))
        best = min(best, (error, extra, tau))
    return best[1], best[2]

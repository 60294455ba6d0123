"""`tf2aif bench --profile`: the numbers a placement model needs for one variant.

- service time at batch 1, isolated (one request at a time): mean E[S], second moment E[S^2] and
  squared coefficient of variation, as an M/G/1 model (Pollaczek-Khinchine) wants them;
- capacity: closed-loop throughput at concurrency 1, 2, 4, ... until it grows less than 5%;
- the highest sustainable rate: open-loop Poisson arrivals at falling fractions of that capacity,
  the first rate that is served with no errors, >= 95% of the offered rate and a stable median;
- resident memory of the server after the load (container stats or /proc of the subprocess).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from tf2aif import __version__
from tf2aif.bench.load import Load, LoadSettings, Measurement
from tf2aif.bench.runner import Bench, measure, prepare
from tf2aif.bench.stats import summarize

__all__ = ["PROFILE_SCHEMA", "ProfileSettings", "profile_document", "profile_endpoint"]

PROFILE_SCHEMA = "tf2aif-bench-profile"
PROFILE_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class ProfileSettings:
    service_requests: int = 500  # isolated requests for E[S] and E[S^2]
    max_concurrency: int = 32
    growth: float = 0.05  # stop the capacity sweep when throughput grows less than this
    fractions: Sequence[float] = (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
    min_served: float = 0.95  # served / offered for a rate to count as sustainable


async def profile_endpoint(
    bench: Bench, settings: ProfileSettings, *, note: Callable[[str], None] = lambda s: None
) -> dict[str, Any]:
    prepared = await prepare(bench)
    note(f"{bench.endpoint.variant}: isolated service time")
    isolated = await measure(
        replace(bench, settings=replace(bench.settings, max_requests=settings.service_requests)),
        prepared,
        Load(concurrency=1),
    )
    sweep = await _capacity(bench, prepared, settings, note)
    peak = max(sweep, key=lambda row: row["throughput_rps"])
    checks = await _rates(bench, prepared, settings, peak["throughput_rps"], note)
    sustainable = next((c["rate"] for c in checks if c["sustainable"]), None)
    memory = bench.endpoint.resident_memory()
    return {
        "variant": bench.endpoint.variant,
        "model": prepared.model,
        "target_kind": bench.endpoint.target_kind,
        "target": bench.endpoint.target,
        "request_kind": prepared.payloads[0].kind,
        "service_time": _service_time(isolated),
        "capacity": {
            "sweep": sweep,
            "peak_rps": peak["throughput_rps"],
            "peak_concurrency": peak["concurrency"],
        },
        "sustainable_rate_rps": sustainable,
        "rate_checks": checks,
        "memory": {
            "rss_bytes": memory,
            "source": {"artifact": "proc", "image": "container"}.get(bench.endpoint.target_kind),
        },
    }


def _service_time(m: Measurement) -> dict[str, Any]:
    seconds = np.asarray(m.latencies_ms, dtype=np.float64) / 1e3
    mean = float(seconds.mean()) if seconds.size else float("nan")
    second = float((seconds**2).mean()) if seconds.size else float("nan")
    stats = summarize(m.latencies_ms)
    return {
        "requests": int(seconds.size),
        "errors": sum(v for k, v in m.outcomes.items() if k != "ok"),
        "mean_s": mean,
        "second_moment_s2": second,
        "scv": (second - mean**2) / mean**2 if mean > 0 else None,
        "p50_s": stats.p50 / 1e3,
        "p99_s": stats.p99 / 1e3,
    }


async def _capacity(bench, prepared, settings: ProfileSettings, note) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    concurrency = 1
    while concurrency <= settings.max_concurrency:
        note(f"{bench.endpoint.variant}: capacity at concurrency {concurrency}")
        m = await measure(bench, prepared, Load(concurrency=concurrency))
        rows.append(_row(m, concurrency=concurrency))
        if len(rows) > 1 and rows[-1]["throughput_rps"] < rows[-2]["throughput_rps"] * (
            1 + settings.growth
        ):
            break
        concurrency *= 2
    return rows


async def _rates(bench, prepared, settings: ProfileSettings, peak: float, note) -> list[dict]:
    checks = []
    for fraction in settings.fractions:
        rate = round(peak * fraction, 2)
        note(f"{bench.endpoint.variant}: open loop at {rate:g} req/s")
        m = await measure(bench, prepared, Load(rate=rate, arrival="poisson"))
        row = _row(m, rate=rate)
        errors = sum(v for k, v in m.outcomes.items() if k != "ok")
        row["sustainable"] = bool(
            m.stable and errors == 0 and row["throughput_rps"] >= settings.min_served * rate
        )
        checks.append(row)
        if row["sustainable"]:
            break
    return checks


def _row(m: Measurement, **load: Any) -> dict[str, Any]:
    stats = summarize(m.latencies_ms)
    ok = m.outcomes.get("ok", 0)
    return {
        **load,
        "throughput_rps": round(ok / m.duration_s, 3) if m.duration_s else 0.0,
        "p50_ms": stats.p50,
        "p99_ms": stats.p99,
        "stable": m.stable,
    }


def profile_document(profiles: Sequence[dict[str, Any]], settings: LoadSettings) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "schema": PROFILE_SCHEMA,
        "version": PROFILE_VERSION,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool": {"tf2aif": __version__, "python": platform.python_version()},
        "settings": asdict(settings),
        "profiles": list(profiles),
    }

"""`tf2aif bench --profile`: the numbers a placement model needs for one variant.

- service time at batch 1, isolated (one request at a time): mean E[S], second moment E[S^2] and
  squared coefficient of variation of the client-observed latency, as an M/G/1 model
  (Pollaczek-Khinchine) wants them; for targets tf2aif starts itself, also the server's own CPU
  seconds per request over the same requests (`server_cpu_s`: utime + stime of the `tf2aif serve`
  process tree from /proc, or the container's cgroup CPU usage from one engine stats sample),
  which leaves out the client's and the loopback's share of the latency; and the pre/post-
  processing seconds per request when the server's stage histogram has them (`processing_s`);
- cold starts (`service_time.cold`, with the server's CPU): the CPU seconds a request costs after
  5, 20 and 80 ms of idleness, fitted as server_cpu_s + extra (1 - e^(-gap/tau)). A request that
  finds its server idle pays part of `extra` (caches and branch predictors lost to other work, a
  halted vCPU woken); placement turns it into M/G/1 with exceptional first service;
- capacity: closed-loop throughput at concurrency 1, 2, 4, ... until it grows less than 5%;
- the highest sustainable rate: open-loop Poisson arrivals at falling fractions of that capacity,
  the first rate at which there are no errors, >= 95% of the arrivals are answered within the
  run and latency does not trend upwards (last third of answers vs first third <= 1.5x);
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
from tf2aif.bench.metrics import stage_deltas
from tf2aif.bench.runner import Bench, measure, prepare, settle, spaced_cpu
from tf2aif.bench.stats import fit_cold_start, summarize

__all__ = [
    "PROFILE_FILE",
    "PROFILE_SCHEMA",
    "ProfileSettings",
    "profile_document",
    "profile_endpoint",
]

PROFILE_SCHEMA = "tf2aif-bench-profile"
PROFILE_FILE = "tf2aif-profile.json"  # next to the build record (tf2aif-record.json)
PROFILE_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class ProfileSettings:
    service_requests: int = 500  # isolated requests for E[S] and E[S^2]
    max_concurrency: int = 32
    growth: float = 0.05  # stop the capacity sweep when throughput grows less than this
    fractions: Sequence[float] = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05)
    min_served: float = 0.95  # answered / arrived during the measurement, to count as sustainable
    max_trend: float = 1.5  # mean latency of the last third / first third: a growing queue fails
    cold_gaps_s: Sequence[float] = (0.005, 0.02, 0.08)  # idle spells before spaced requests
    cold_requests: int = 60  # per gap; 0 skips the cold-start measurement


async def profile_endpoint(
    bench: Bench, settings: ProfileSettings, *, note: Callable[[str], None] = lambda s: None
) -> dict[str, Any]:
    prepared = await prepare(bench)
    note(f"{bench.endpoint.variant}: isolated service time")
    # a fixed number of isolated requests, not "until stable": E[S^2] needs the tail sampled
    fixed = replace(
        bench.settings,
        max_requests=settings.service_requests,
        stable_windows=10**9,
        max_duration_s=max(bench.settings.max_duration_s, 300.0),
    )
    isolated = await measure(
        replace(bench, settings=fixed), prepared, Load(concurrency=1), server_cpu=True
    )
    service = _service_time(isolated)
    service["cold"] = await _cold_starts(bench, prepared, settings, service["server_cpu_s"], note)
    quiet_ms = 3 * service["p50_s"] * 1e3 + 5
    sweep = await _capacity(bench, prepared, settings, note)
    peak = max(sweep, key=lambda row: row["throughput_rps"])
    checks = await _rates(bench, prepared, settings, peak["throughput_rps"], quiet_ms, note)
    sustainable = next((c["rate"] for c in checks if c["sustainable"]), None)
    memory = bench.endpoint.resident_memory()
    return {
        "variant": bench.endpoint.variant,
        "model": prepared.model,
        "target_kind": bench.endpoint.target_kind,
        "target": bench.endpoint.target,
        "request_kind": prepared.payloads[0].kind,
        "service_time": service,
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
    first, last = m.probes or (None, None)
    return {
        "requests": int(seconds.size),
        "errors": sum(v for k, v in m.outcomes.items() if k != "ok"),
        "mean_s": mean,
        "second_moment_s2": second,
        "scv": (second - mean**2) / mean**2 if mean > 0 else None,
        "p50_s": stats.p50 / 1e3,
        "p99_s": stats.p99 / 1e3,
        "server_cpu_s": server_cpu_per_request(first, last, sum(m.outcomes.values())),
        "processing_s": processing_per_request(first, last, sum(m.outcomes.values())),
    }


async def _cold_starts(bench, prepared, settings: ProfileSettings, warm_s, note):
    if warm_s is None or settings.cold_requests <= 0:
        return None
    points = []
    for gap in settings.cold_gaps_s:
        note(
            f"{bench.endpoint.variant}: {settings.cold_requests} requests after {gap * 1e3:g} ms idle"
        )
        cpu = await spaced_cpu(bench, prepared, gap, settings.cold_requests)
        if cpu is None:
            return None
        points.append((gap, cpu))
    extra, tau = fit_cold_start(warm_s, points)
    return {
        "points": [{"gap_s": gap, "server_cpu_s": cpu} for gap, cpu in points],
        "extra_s": extra,
        "tau_s": tau,
    }


def server_cpu_per_request(first: Any, last: Any, requests: int) -> float | None:
    """The server's CPU seconds over the measured requests, per request; None when unknown."""
    cpu = [getattr(sample, "cpu_s", None) for sample in (first, last)]
    if None in cpu or requests <= 0 or cpu[1] < cpu[0]:
        return None
    return (cpu[1] - cpu[0]) / requests


def processing_per_request(first: Any, last: Any, requests: int) -> float | None:
    """Pre- and post-processing seconds per request from the server's stage histogram."""
    stages = [getattr(sample, "stages", None) for sample in (first, last)]
    if None in stages or requests <= 0:
        return None
    deltas = stage_deltas(stages[0], stages[1])
    timed = [deltas[s] for s in ("preprocess", "postprocess") if s in deltas]
    if not any(d.count > 0 for d in timed):
        return None
    return sum(d.sum_s for d in timed) / requests


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


async def _rates(bench, prepared, settings: ProfileSettings, peak: float, quiet_ms, note):
    checks = []
    for fraction in settings.fractions:
        rate = round(peak * fraction, 2)
        note(f"{bench.endpoint.variant}: open loop at {rate:g} req/s")
        await settle(bench, prepared, quiet_ms=quiet_ms)
        m = await measure(bench, prepared, Load(rate=rate, arrival="poisson"))
        row = _row(m, rate=rate)
        errors = sum(v for k, v in m.outcomes.items() if k != "ok")
        row["served"] = round(m.outcomes.get("ok", 0) / max(m.scheduled, 1), 4)
        row["latency_trend"] = _trend(m.latencies_ms)
        row["sustainable"] = bool(
            errors == 0
            and row["served"] >= settings.min_served
            and row["latency_trend"] <= settings.max_trend
        )
        checks.append(row)
        if row["sustainable"]:
            break
    return checks


def _trend(latencies_ms: Sequence[float]) -> float:
    """Mean latency of the last third of the answers over that of the first third.

    A queue that keeps growing (arrivals beyond capacity) makes this climb well above 1 within
    seconds, while it stays near 1 under random but sustainable load, even in short runs whose
    windows are too noisy for the 10% stability rule.
    """
    third = len(latencies_ms) // 3
    if third < 5:
        return float("inf")
    first, last = np.mean(latencies_ms[:third]), np.mean(latencies_ms[-third:])
    return round(float(last / first), 4)


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

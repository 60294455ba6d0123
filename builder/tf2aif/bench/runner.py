"""Bench one endpoint: read its model metadata, build the request bodies once, then apply each load
in turn and turn every measurement into a RunResult (with the server's stage split when it has one)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tf2aif.bench.clients import HttpClient, open_client
from tf2aif.bench.load import Load, LoadSettings, Measurement, run_load
from tf2aif.bench.metrics import stage_deltas, stage_totals
from tf2aif.bench.payloads import (
    Payload,
    encode_infer,
    file_payloads,
    health_payload,
    random_inputs,
    sample_inputs,
)
from tf2aif.bench.result import RunResult, Subject
from tf2aif.bench.stats import summarize
from tf2aif.bench.targets import Endpoint
from tf2aif.errors import BenchError

__all__ = [
    "Bench",
    "InputSpec",
    "Prepared",
    "ServerSample",
    "bench_endpoint",
    "endpoint_subject",
    "measure",
    "prepare",
    "run_result",
    "settle",
]

log = logging.getLogger(__name__)

INPUT_KINDS = ("random", "samples", "files", "health")


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """Where request bodies come from."""

    kind: str = "random"  # random | samples | files | health
    binary: bool = True  # the OIP binary tensor extension (else JSON `data` arrays)
    samples: str | None = None  # "path/to/module.py:function" yielding input dicts
    files: tuple[Path, ...] = ()
    count: int = 8  # distinct bodies to cycle through
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class Prepared:
    model: str
    metadata: dict[str, Any]
    payloads: tuple[Payload, ...]


async def fetch_metadata(client: HttpClient, model: str) -> dict[str, Any]:
    status, body = await client.get(f"/v2/models/{model}")
    if status != 200:
        raise BenchError(
            f"GET /v2/models/{model} answered {status}: {body[:200].decode(errors='replace')}"
        )
    return json.loads(body)


async def make_payloads(client: HttpClient, model: str | None, spec: InputSpec) -> Prepared:
    if spec.kind == "health":
        return Prepared(model=model or "", metadata={}, payloads=(health_payload(),))
    model = model or await discover_model(client)
    metadata = await fetch_metadata(client, model)
    if spec.kind == "files":
        return Prepared(
            model=model, metadata=metadata, payloads=tuple(file_payloads(model, spec.files))
        )
    if spec.kind == "samples":
        tensors = sample_inputs(_sample_function(spec.samples)(), spec.count)
    else:
        tensors = [random_inputs(metadata, seed=spec.seed + i) for i in range(spec.count)]
    payloads = tuple(encode_infer(model, t, binary=spec.binary) for t in tensors)
    return Prepared(model=model, metadata=metadata, payloads=payloads)


async def discover_model(client: HttpClient) -> str:
    """The one model a server serves, from the repository extension (POST /v2/repository/index)."""
    try:
        status, body = await client.post("/v2/repository/index", b"{}")
        names = sorted({entry["name"] for entry in json.loads(body)}) if status == 200 else []
    except (OSError, ValueError, KeyError, TypeError):
        names = []
    if len(names) == 1:
        return names[0]
    found = f"; it serves {', '.join(names)}" if names else ""
    raise BenchError(f"which model? pass --model NAME (served at /v2/models/NAME){found}")


def _sample_function(reference: str | None) -> Callable[[], Any]:
    from tf2aif.image.plugins import load_function

    if not reference or ":" not in reference:
        raise BenchError(f"--samples wants MODULE.py:FUNCTION, got {reference!r}")
    path, _, function = reference.rpartition(":")
    return load_function(path, function)


@dataclass(frozen=True, kw_only=True)
class Bench:
    """One endpoint under a sequence of loads."""

    endpoint: Endpoint
    inputs: InputSpec
    loads: Sequence[Load]
    settings: LoadSettings
    http_client: str = "aiohttp"
    on_run: Callable[[RunResult], None] = field(default=lambda run: None)


async def prepare(bench: Bench) -> Prepared:
    async with _client(bench, 4) as client:
        return await make_payloads(client, bench.endpoint.model, bench.inputs)


async def bench_endpoint(bench: Bench) -> list[RunResult]:
    prepared = await prepare(bench)
    subject = endpoint_subject(bench.endpoint, prepared)
    runs = []
    quiet_ms = None
    for load in bench.loads:
        measurement = await measure(bench, prepared, load)
        if quiet_ms is None and load.concurrency == 1:
            quiet_ms = 3 * (summarize(measurement.latencies_ms).p50 or 0) + 5
        if measurement.unfinished:
            await settle(bench, prepared, quiet_ms=quiet_ms or 1000.0)
        run = run_result(bench, subject, prepared, measurement)
        bench.on_run(run)
        runs.append(run)
    return runs


async def settle(bench: Bench, prepared: Prepared, *, quiet_ms: float, timeout_s: float = 30.0):
    """Wait until the server has worked off requests a finished run left queued.

    Servers keep working on requests whose client went away, so after an open-loop run beyond
    capacity the next run would start behind a backlog. Sends one request at a time until one is
    answered within `quiet_ms`, or latencies stop falling (the backlog is gone and the machine is
    merely slower than when `quiet_ms` was measured), or the timeout passes.
    """
    payload = prepared.payloads[0]
    deadline = time.perf_counter() + timeout_s
    latencies: list[float] = []
    async with _client(bench, 1) as client:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await client.send(payload)
            latencies.append((time.perf_counter() - start) * 1e3)
            if latencies[-1] <= quiet_ms or _levelled(latencies):
                break
    return latencies[-1] if latencies else float("nan")


async def spaced_cpu(bench: Bench, prepared: Prepared, gap_s: float, count: int) -> float | None:
    """Server CPU seconds per request when each of `count` requests follows `gap_s` seconds of
    idleness (None when the server's CPU cannot be read)."""
    cpu_seconds = bench.endpoint.cpu_seconds
    payload = prepared.payloads[0]
    async with _client(bench, 1) as client:
        await client.send(payload)  # the connection is open before the first reading
        before = cpu_seconds()
        for _ in range(count):
            await asyncio.sleep(gap_s)
            await client.send(payload)
        after = cpu_seconds()
    if before is None or after is None or after < before:
        return None
    return (after - before) / count


def _levelled(latencies: Sequence[float], span: int = 5) -> bool:
    """The last `span` latencies are no better than the `span` before them (median, 10%)."""
    if len(latencies) < 2 * span:
        return False
    recent = sorted(latencies[-span:])[span // 2]
    before = sorted(latencies[-2 * span : -span])[span // 2]
    return recent >= 0.9 * before


async def measure(
    bench: Bench, prepared: Prepared, load: Load, *, server_cpu: bool = False
) -> Measurement:
    """One load on a fresh connection pool; /metrics is scraped on its own connection.

    The probes are the stage totals at the start and end of the measurement; with `server_cpu`
    each is a `ServerSample` that also holds the server's CPU seconds at that moment.
    """
    connections = load.concurrency or bench.settings.max_connections
    async with _client(bench, connections) as client, _client(bench, 1) as scraper:
        probe = _metrics_probe(scraper, prepared.model)
        if server_cpu:
            probe = _with_cpu(probe, bench.endpoint.cpu_seconds)
        return await run_load(client, prepared.payloads, load, bench.settings, probe=probe)


@dataclass(frozen=True, kw_only=True)
class ServerSample:
    """What the server's counters said at one moment: stage totals and CPU seconds."""

    stages: dict[str, tuple[float, float]] | None
    cpu_s: float | None


def _with_cpu(probe, cpu_seconds: Callable[[], float | None]):
    """The CPU figure is read as close to the measured period as the scrape allows: after the
    scrape at the start, before it at the end (a scrape costs the server CPU of its own)."""
    calls = itertools.count()

    async def sample() -> ServerSample:
        if next(calls) == 0:
            stages = await probe()
            return ServerSample(stages=stages, cpu_s=cpu_seconds())
        cpu = cpu_seconds()
        return ServerSample(stages=await probe(), cpu_s=cpu)

    return sample


def _client(bench: Bench, connections: int):
    return open_client(
        bench.http_client,
        bench.endpoint.base_url,
        timeout_s=bench.settings.timeout_s,
        max_connections=connections,
    )


def _metrics_probe(scraper: HttpClient, model: str):
    async def probe() -> dict[str, tuple[float, float]] | None:
        try:
            status, body = await scraper.get("/metrics")
        except Exception as exc:  # a server without /metrics is fine; only its split is missing
            log.debug("no /metrics: %s", exc)
            return None
        if status != 200:
            return None
        return stage_totals(body.decode(errors="replace"), model=model or None) or None

    return probe


def endpoint_subject(endpoint: Endpoint, prepared: Prepared) -> Subject:
    """What the results of `endpoint` are about: its variant, model and target."""
    return Subject.from_variant(
        endpoint.variant,
        model=prepared.model,
        target_kind=endpoint.target_kind,
        target=endpoint.target,
    )


def run_result(bench: Bench, subject: Subject, prepared: Prepared, m: Measurement) -> RunResult:
    """One measurement as a result row: request kind and size, and per-stage server times when
    the metrics were scraped before and after."""
    stages = None
    if m.probes and m.probes[0] is not None and m.probes[1] is not None:
        stages = stage_deltas(m.probes[0], m.probes[1])
    sizes = [len(p.body) for p in prepared.payloads]
    return RunResult(
        subject=subject,
        measurement=m,
        request_kind=prepared.payloads[0].kind,
        request_bytes=round(sum(sizes) / len(sizes)),
        http_client=bench.http_client,
        stages=stages,
    )

"""The load generator: closed loop (fixed concurrency) or open loop (fixed arrival rate), a warm-up,
then measurement windows until the last windows agree or a bound is hit.

Closed loop: `concurrency` workers each send, wait for the answer, send again. Open loop: requests
are scheduled at Poisson or constant arrival times whatever the server does, and latency counts from
the *scheduled* send time, so time spent queueing (in the client's connection pool or the server)
shows up instead of silently lowering the offered rate (no coordinated omission). That makes the
client's own punctuality part of every latency, so sends are timed finer than the event loop's
timers (see `wait_until`) and how late they went out is reported (`send_lag_ms`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tf2aif.bench.clients import HttpClient
from tf2aif.bench.payloads import Payload
from tf2aif.bench.stats import within

__all__ = [
    "ARRIVALS",
    "BACKLOG_PER_CONNECTION",
    "Load",
    "LoadSettings",
    "Measurement",
    "Window",
    "run_load",
    "wait_until",
]

log = logging.getLogger(__name__)

ARRIVALS = ("poisson", "constant")

# asyncio's timers fire about 1 ms late here: epoll counts whole milliseconds (rounded up) and
# the core has to wake. The last stretch before a scheduled send is spent yielding instead.
SPIN_S = 0.002
# Open loop: beyond this many requests waiting per connection the client itself is what falls
# behind; further arrivals are counted as "not_sent" errors instead of piling up in memory.
BACKLOG_PER_CONNECTION = 4


@dataclass(frozen=True, kw_only=True)
class Load:
    """What to apply: a closed loop with `concurrency` workers, or an open loop at `rate` req/s."""

    concurrency: int | None = None
    rate: float | None = None
    arrival: str = "poisson"
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("a load has either a concurrency (closed loop) or a rate (open loop)")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {ARRIVALS}, not {self.arrival!r}")

    @property
    def mode(self) -> str:
        return "closed" if self.concurrency is not None else "open"

    def label(self) -> str:
        return f"c={self.concurrency}" if self.mode == "closed" else f"{self.rate:g} req/s"


@dataclass(frozen=True, kw_only=True)
class LoadSettings:
    warmup_s: float = 2.0
    window_s: float = 2.0
    stable_windows: int = 3  # the last this-many windows must agree within `tolerance`
    tolerance: float = 0.10
    max_duration_s: float = 30.0  # measurement time bound (warm-up not included)
    max_requests: int | None = None  # measured requests bound
    timeout_s: float = 30.0
    max_connections: int = 256  # open loop: beyond this, requests wait in the client's pool


@dataclass(frozen=True, kw_only=True)
class Window:
    start_s: float  # since the end of the warm-up
    duration_s: float
    requests: int
    errors: int
    throughput_rps: float
    p50_ms: float


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """The raw outcome of one load run (measurement period only)."""

    load: Load
    duration_s: float
    latencies_ms: tuple[float, ...]  # successful requests, in completion order
    outcomes: dict[str, int]  # "ok" and error keys (http_<status>, timeout, connection, protocol)
    windows: tuple[Window, ...]
    stable: bool
    stop_reason: str  # stable | max_duration | max_requests
    scheduled: int  # open loop: arrivals scheduled during the measurement; closed loop: sends
    unfinished: int  # requests still in flight when the measurement ended
    client_cpu_s: float  # CPU time of this process during the measurement
    send_lag_ms: tuple[float, ...] = ()  # open loop: actual minus scheduled send time, per request
    loadavg_1m: float  # the host's 1-minute load average at the end: was the machine busy?
    probes: tuple[object, object] | None = None  # `probe()` at the start and end of the measurement


@dataclass(kw_only=True)
class _Recorder:
    settings: LoadSettings
    mode: str
    measure_from: float = float("inf")
    measure_to: float = float("inf")
    done: list[tuple[float, float, str]] = field(default_factory=list)  # (end, latency_s, outcome)
    lags: list[float] = field(default_factory=list)  # open loop: send lag (s) of measured requests
    measured: int = 0
    scheduled: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, start: float, end: float, outcome: str, lag: float | None = None) -> None:
        if self.measure_from <= end <= self.measure_to:
            self.done.append((end, end - start, outcome))
            if lag is not None:
                self.lags.append(lag)
            self.measured += 1
            limit = self.settings.max_requests
            if limit is not None and self.measured >= limit and not self.stop.is_set():
                self.measure_to = end
                self.stop.set()

    def note_send(self, when: float) -> None:
        if self.measure_from <= when <= self.measure_to:
            self.scheduled += 1


Probe = Callable[[], Awaitable[object]]


async def run_load(
    client: HttpClient,
    payloads: Sequence[Payload],
    load: Load,
    settings: LoadSettings,
    *,
    probe: Probe | None = None,
) -> Measurement:
    """Apply `load` with `client`, cycling through `payloads`; return what was measured.

    `probe` (say, a /metrics scrape) is awaited when the measurement starts and when it ends, while
    the load keeps running, so server-side counters can be matched to the measured period.
    """
    recorder = _Recorder(settings=settings, mode=load.mode)
    cycle = itertools.cycle(payloads)
    in_flight: set[asyncio.Task[None]] = set()
    if load.mode == "closed":
        drivers = [
            asyncio.create_task(_closed_worker(client, cycle, recorder))
            for _ in range(load.concurrency or 1)
        ]
    else:
        drivers = [asyncio.create_task(_open_scheduler(client, cycle, recorder, load, in_flight))]
    try:
        windows, stable, reason, cpu_start, first = await _monitor(recorder, settings, probe)
        last = await probe() if probe else None
    finally:
        recorder.stop.set()
    cpu = time.process_time() - cpu_start
    unfinished = len(in_flight) + sum(1 for d in drivers if not d.done())
    for task in [*drivers, *in_flight]:
        task.cancel()
    await asyncio.gather(*drivers, *in_flight, return_exceptions=True)
    measurement = _measurement(load, recorder, windows, stable, reason, cpu, unfinished)
    if probe is None:
        return measurement
    return dataclasses.replace(measurement, probes=(first, last))


def _measurement(load, recorder, windows, stable, reason, cpu, unfinished) -> Measurement:
    outcomes: dict[str, int] = {}
    for _, _, outcome in recorder.done:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    latencies = tuple(lat * 1e3 for _, lat, outcome in recorder.done if outcome == "ok")
    return Measurement(
        load=load,
        duration_s=round(recorder.measure_to - recorder.measure_from, 4),
        latencies_ms=latencies,
        outcomes=dict(sorted(outcomes.items())),
        windows=tuple(windows),
        stable=stable,
        stop_reason=reason,
        scheduled=recorder.scheduled if load.mode == "open" else recorder.measured,
        unfinished=unfinished if load.mode == "open" else 0,
        client_cpu_s=round(cpu, 4),
        send_lag_ms=tuple(lag * 1e3 for lag in recorder.lags),
        loadavg_1m=round(os.getloadavg()[0], 2),
    )


async def _closed_worker(client: HttpClient, cycle, recorder: _Recorder) -> None:
    while not recorder.stop.is_set():
        payload = next(cycle)
        start = time.perf_counter()
        outcome = await client.send(payload)
        recorder.add(start, time.perf_counter(), outcome)


async def _open_scheduler(client, cycle, recorder: _Recorder, load: Load, in_flight: set) -> None:
    gap = _gaps(load)
    backlog = recorder.settings.max_connections * BACKLOG_PER_CONNECTION
    when = time.perf_counter()
    while not recorder.stop.is_set():
        when += gap()
        await wait_until(when)
        recorder.note_send(when)
        if len(in_flight) >= backlog:
            recorder.add(when, time.perf_counter(), "not_sent")
            continue
        task = asyncio.create_task(_open_request(client, next(cycle), when, recorder))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)


async def wait_until(when: float) -> None:
    """Sleep until `when` (perf_counter), to within a few tens of microseconds of it. Yields at
    least once, so a scheduler that is behind still lets answers and the monitor run."""
    coarse = when - time.perf_counter() - SPIN_S
    if coarse > 0:
        await asyncio.sleep(coarse)
    await asyncio.sleep(0)
    while time.perf_counter() < when:
        await asyncio.sleep(0)  # other tasks and I/O keep running while this one waits


async def _open_request(client, payload: Payload, scheduled: float, recorder: _Recorder) -> None:
    lag = time.perf_counter() - scheduled
    outcome = await client.send(payload)
    recorder.add(scheduled, time.perf_counter(), outcome, lag)


def _gaps(load: Load) -> Callable[[], float]:
    mean = 1.0 / float(load.rate or 1.0)
    if load.arrival == "constant":
        return lambda: mean
    rng = random.Random(load.seed)
    return lambda: rng.expovariate(1.0 / mean)


async def _monitor(recorder: _Recorder, settings: LoadSettings, probe: Probe | None):
    """Warm up, then close a window every `window_s` until stable or a bound is reached."""
    await _sleep_or_stop(recorder, settings.warmup_s)
    first = await probe() if probe else None
    recorder.measure_from = time.perf_counter()
    cpu_start = time.process_time()
    windows: list[Window] = []
    seen = 0
    while True:
        window_end = recorder.measure_from + settings.window_s * (len(windows) + 1)
        deadline = recorder.measure_from + settings.max_duration_s
        stopped = await _sleep_or_stop(recorder, min(window_end, deadline) - time.perf_counter())
        if stopped:  # max_requests reached inside this window
            return (
                windows,
                _stable(windows, settings, recorder.mode),
                "max_requests",
                cpu_start,
                first,
            )
        now = time.perf_counter()
        windows.append(_window(recorder, seen, now, len(windows), settings))
        seen = len(recorder.done)
        if _stable(windows, settings, recorder.mode):
            recorder.measure_to = now
            return windows, True, "stable", cpu_start, first
        if now >= deadline - 1e-3:
            recorder.measure_to = now
            return windows, False, "max_duration", cpu_start, first


async def _sleep_or_stop(recorder: _Recorder, seconds: float) -> bool:
    try:
        await asyncio.wait_for(recorder.stop.wait(), timeout=max(seconds, 0.0))
        return True
    except asyncio.TimeoutError:
        return False


def _window(recorder: _Recorder, seen: int, now: float, index: int, settings) -> Window:
    start = recorder.measure_from + settings.window_s * index
    records = recorder.done[seen:]
    ok = [lat for _, lat, outcome in records if outcome == "ok"]
    duration = now - start
    return Window(
        start_s=round(start - recorder.measure_from, 4),
        duration_s=round(duration, 4),
        requests=len(records),
        errors=len(records) - len(ok),
        throughput_rps=round(len(ok) / duration, 3) if duration > 0 else 0.0,
        p50_ms=round(float(np.median(ok)) * 1e3, 4) if ok else float("nan"),
    )


def _stable(windows: Sequence[Window], settings: LoadSettings, mode: str) -> bool:
    """The last windows agree on median latency, and (closed loop) on throughput too.

    An open loop's throughput follows its random arrivals (a 2 s window at 50 req/s varies by
    +-10% from Poisson noise alone), so there only the latency decides; a queue that keeps
    growing raises the median window after window and is never called stable.
    """
    last = windows[-settings.stable_windows :]
    if len(last) < settings.stable_windows or any(w.requests == 0 for w in last):
        return False
    if not within([w.p50_ms for w in last], settings.tolerance):
        return False
    return mode == "open" or within([w.throughput_rps for w in last], settings.tolerance)

"""Discrete-event simulation of one node's queues, independent of the planner's formulas.

A node is a list of stations; each request of a stream visits its stages in order (e.g. the
CPU for pre/post-processing, then the accelerator). Stations behave as the hardware does:

* "shared": one FCFS server process per stream (instance); the c units are time-shared among the
  busy processes, each running at min(1, c / busy) -- a CPU running one server per model, or a GPU
  time-slicing contexts.
* "ps": every request in service at once at min(1, c / n) (textbook M/G/c-PS; used in tests).
* "exclusive": one FCFS queue; a request whose model differs from the previous one pays the
  model's switch overhead before its service (edgeTPU, FPGA kernel reload).

Service times are Gamma-distributed with the profile's mean and second moment (deterministic when
the variance is zero). Response times of requests arriving after the warm-up are kept; the mean
comes with a 95% batch-means confidence half-width (10 batches in time).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SimResult", "SimStage", "SimStation", "SimStream", "simulate_node"]

_T_975_9 = 2.262  # Student t, 97.5%, 9 degrees of freedom (10 batches)
_BATCHES = 10


@dataclass(frozen=True, kw_only=True)
class SimStation:
    kind: str  # "shared" | "ps" | "exclusive"
    units: int = 1


@dataclass(frozen=True, kw_only=True)
class SimStage:
    station: int  # index into the node's stations
    mean: float
    m2: float
    switch: float = 0.0


@dataclass(frozen=True, kw_only=True)
class SimStream:
    name: str
    rate: float
    stages: tuple[SimStage, ...]


@dataclass(frozen=True, kw_only=True)
class SimResult:
    mean: float
    half_width: float  # 95% confidence half-width of the mean
    p99: float
    count: int


def _sampler(rng: random.Random, mean: float, m2: float):
    variance = m2 - mean * mean
    if mean <= 0.0:
        return lambda: 0.0
    if variance <= 1e-12 * mean * mean:
        return lambda: mean
    shape, scale = mean * mean / variance, variance / mean
    return lambda: rng.gammavariate(shape, scale)


class _Shared:
    """Per-stream FCFS processes sharing `units` at min(1, units / busy) each."""

    def __init__(self, units: int) -> None:
        self.units = units
        self.queues: dict[int, deque] = {}
        self.remaining: dict[int, float] = {}
        self.speed = 0.0  # of each busy process, kept in step with `remaining`

    def _busy_changed(self) -> None:
        busy = len(self.remaining)
        self.speed = min(1.0, self.units / busy) if busy else 0.0

    def add(self, stream: int, job, work: float) -> None:
        queue = self.queues.get(stream)
        if queue is None:
            queue = self.queues[stream] = deque()
        queue.append((job, work))
        if len(queue) == 1:
            self.remaining[stream] = work
            self._busy_changed()

    def next_time(self, now: float) -> float:
        if not self.remaining:
            return math.inf
        return now + min(self.remaining.values()) / self.speed

    def advance(self, dt: float) -> None:
        done = self.speed * dt
        if done != 0.0:  # x - 0.0 is x: nothing to do
            remaining = self.remaining
            for stream in remaining:
                remaining[stream] -= done

    def pop_done(self):
        remaining = self.remaining
        stream = min(remaining, key=remaining.__getitem__)
        queue = self.queues[stream]
        job, _ = queue.popleft()
        del remaining[stream]  # re-inserted last, as ties between streams go by this order
        if queue:
            remaining[stream] = queue[0][1]
        else:
            self._busy_changed()
        return job


class _ProcessorSharing:
    """Every job in service at once at min(1, units / n)."""

    def __init__(self, units: int) -> None:
        self.units = units
        self.jobs: dict[int, tuple[object, float]] = {}
        self._next_id = 0

    def add(self, stream: int, job, work: float) -> None:
        self.jobs[self._next_id] = (job, work)
        self._next_id += 1

    def _speed(self) -> float:
        return min(1.0, self.units / len(self.jobs)) if self.jobs else 0.0

    def next_time(self, now: float) -> float:
        if not self.jobs:
            return math.inf
        return now + min(w for _, w in self.jobs.values()) / self._speed()

    def advance(self, dt: float) -> None:
        done = self._speed() * dt
        self.jobs = {k: (job, w - done) for k, (job, w) in self.jobs.items()}

    def pop_done(self):
        key = min(self.jobs, key=lambda k: self.jobs[k][1])
        return self.jobs.pop(key)[0]


class _Exclusive:
    """One FCFS queue; switching to another stream's model costs that stream's overhead."""

    def __init__(self, switch: dict[int, float]) -> None:
        self.switch = switch
        self.queue: deque = deque()
        self.finish = math.inf
        self.last: int | None = None

    def add(self, stream: int, job, work: float) -> None:
        self.queue.append((stream, job, work))

    def start(self, now: float) -> None:
        if self.finish == math.inf and self.queue:
            stream, _, work = self.queue[0]
            overhead = self.switch.get(stream, 0.0) if self.last not in (None, stream) else 0.0
            self.finish = now + work + overhead
            self.last = stream

    def next_time(self, now: float) -> float:
        self.start(now)
        return self.finish

    def advance(self, dt: float) -> None:
        pass

    def pop_done(self):
        _, job, _ = self.queue.popleft()
        self.finish = math.inf
        return job


def _build_stations(stations: Sequence[SimStation], streams: Sequence[SimStream]):
    built = []
    for index, station in enumerate(stations):
        if station.kind == "shared":
            built.append(_Shared(station.units))
        elif station.kind == "ps":
            built.append(_ProcessorSharing(station.units))
        elif station.kind == "exclusive":
            switch = {
                s: stage.switch
                for s, stream in enumerate(streams)
                for stage in stream.stages
                if stage.station == index
            }
            built.append(_Exclusive(switch))
        else:
            raise ValueError(f"unknown station kind {station.kind!r}")
    return built


def simulate_node(
    stations: Sequence[SimStation],
    streams: Sequence[SimStream],
    *,
    horizon: float,
    warmup: float = 0.1,
    seed: int = 0,
) -> dict[str, SimResult]:
    """Simulate `horizon` seconds; keep requests arriving after `warmup * horizon`."""
    rng = random.Random(seed)
    built = _build_stations(stations, streams)
    samplers = [[_sampler(rng, st.mean, st.m2) for st in stream.stages] for stream in streams]
    arrivals = [(rng.expovariate(s.rate), i) for i, s in enumerate(streams) if s.rate > 0]
    heapq.heapify(arrivals)
    responses: list[list[tuple[float, float]]] = [[] for _ in streams]
    rates = [stream.rate for stream in streams]
    stations_of = [[stage.station for stage in stream.stages] for stream in streams]
    moving = [station for station in built if not isinstance(station, _Exclusive)]
    expovariate, heappush, heappop = rng.expovariate, heapq.heappush, heapq.heappop
    warm = warmup * horizon
    now = 0.0
    while True:
        next_station, t_station = None, math.inf
        for station in built:
            t = station.next_time(now)
            if t < t_station:
                next_station, t_station = station, t
        t_arrival = arrivals[0][0] if arrivals else math.inf
        t_next = min(t_station, t_arrival)
        if t_next > horizon and not any(_busy(s) for s in built):
            break
        dt = t_next - now
        for station in moving:  # an exclusive station does not advance
            station.advance(dt)
        now = t_next
        if t_arrival <= t_station:
            _, s = heappop(arrivals)
            if now > horizon:
                continue
            heappush(arrivals, (now + expovariate(rates[s]), s))
            job = (s, now, 0)
            stage = 0
        else:
            s, born, stage = next_station.pop_done()
            stage += 1
            if stage == len(stations_of[s]):
                if born >= warm:
                    responses[s].append((born, now - born))
                continue
            job = (s, born, stage)
        built[stations_of[s][stage]].add(s, job, samplers[s][stage]())
    return {
        stream.name: _summarise(kept, warmup * horizon, horizon)
        for stream, kept in zip(streams, responses, strict=True)
    }


def _busy(station) -> bool:
    if isinstance(station, _Exclusive):
        return bool(station.queue)
    if isinstance(station, _Shared):
        return bool(station.remaining)
    return bool(station.jobs)


def _summarise(kept: list[tuple[float, float]], start: float, end: float) -> SimResult:
    if not kept:
        return SimResult(mean=math.nan, half_width=math.inf, p99=math.nan, count=0)
    values = sorted(r for _, r in kept)
    mean = sum(values) / len(values)
    p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
    width = (end - start) / _BATCHES
    batches: list[list[float]] = [[] for _ in range(_BATCHES)]
    for born, response in kept:
        batches[min(_BATCHES - 1, int((born - start) / width))].append(response)
    means = [sum(b) / len(b) for b in batches if b]
    if len(means) < 2:
        return SimResult(mean=mean, half_width=math.inf, p99=p99, count=len(values))
    grand = sum(means) / len(means)
    sd = math.sqrt(sum((m - grand) ** 2 for m in means) / (len(means) - 1))
    return SimResult(
        mean=mean, half_width=_T_975_9 * sd / math.sqrt(len(means)), p99=p99, count=len(values)
    )

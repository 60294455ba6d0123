"""Queueing models of inference on a shared node: pure functions, seconds and requests/second.

Notation for one model instance k on a device: arrival rate l_k (Poisson), isolated service time
S_k with mean m_k and second moment m2_k, load rho_k = l_k m_k, device load rho = sum rho_k / c.

Time-shared devices (CPU cores, GPU contexts), two models:

* "ps" -- every request on the device is served by processor sharing (M/G/c-PS, a symmetric
  queue, so insensitive to the service distribution):
      E[T_k] = m_k (1 + C(c, c rho) / (c (1 - rho)))        C = Erlang-C probability of waiting
  which for c = 1 is the textbook  E[T_k] = m_k / (1 - rho).
* "fcfs-ps" (default) -- what a node really runs: one server process per instance, each FCFS
  (one request at a time), the OS time-sharing the c cores among busy processes.
  - With at most c processes each has a core: instance k is an M/G/1 FCFS queue (Welch's
    form below when it has cold starts), exact.
  - With more processes than cores, the larger of two predictions:
    (a) shared_device_gps, ideal generalised processor sharing among per-process FCFS queues
        (each busy process gets min(1, c / busy)), which has no closed form. Instance k is an
        M/G/1 FCFS queue whose server runs at speed s_k < 1 because of the others:
          E[T_k] = m_k' + l_k m2_k' / (2 (1 - l_k m_k')),   m_k' = m_k / s_k,  m2_k' = m2_k / s_k^2
        and the prediction is the geometric mean of the responses under two choices of s_k
        that bracket the simulated system (shared_device_priority: the others pre-empt,
        s_k = 1 - C(c, sum_(j!=k) rho_j); shared_device_independent: the others are busy
        independently, s_k = E[min(1, c / (1 + K_k))] from a fixed point);
    (b) M/G/c-PS over every request, each instance's mean service taken as its work per request
        with cold starts (busy_k / l_k).
    Measured on real co-located tf2aif servers (docs/placement.md), (b) is the one that holds
    up to loads of about 0.85: a server is not one FCFS thread (its event loop reads, decodes
    and answers requests while its inference thread runs), and the OS shares the core among
    all those threads. (a) under-predicted those servers by 20-40% at loads 0.4-0.6 (it also
    under-predicts its own simulated system by up to 29% with four processes at load 0.7).
    (a) stays as a floor for high-variance services, where a process's own FCFS queue is
    worse than a fair share.

One-model-at-a-time devices (edgeTPU, FPGA DPU reloading its kernel): FCFS M/G/1 over the merged
stream l = sum l_k; a request of model k pays the switch overhead o_k when the previous request
was of another model, which under Poisson arrivals happens with probability p_k = 1 - l_k / l:
      S'_k = S_k + o_k Bernoulli(p_k),   E[S'_k] = m_k + p_k o_k,
      E[S'_k^2] = m2_k + 2 m_k p_k o_k + p_k o_k^2
      W = l E[S'^2] / (2 (1 - rho')),    rho' = sum l_k E[S'_k]   (Pollaczek-Khinchine)
      E[T_k] = W + E[S'_k].

Cold starts (M/G/1 with exceptional first service, Welch 1964): on a real CPU a request that
finds its server process idle often takes longer than one that follows another (caches, TLB and
branch predictors were lost to other work while it slept; a halted virtual CPU must be woken).
Given that cold service S0 (mean m0, second moment m2_0) besides the warm S, the mean-value
argument behind Pollaczek-Khinchine (an arrival waits for the work it finds, PASTA; a customer of
service X waiting W adds X W + X^2 / 2 to the area under the workload; X = S0 exactly when
W = 0) gives, with rho = l m and rho0 = l m0:
      p0 = (1 - rho) / (1 - rho + rho0)                  P(an arrival finds the server idle)
      E[W] = l (p0 m2_0 + (1 - p0) m2) / (2 (1 - rho))
      E[T] = E[W] + p0 m0 + (1 - p0) m,   busy = 1 - p0
which is P-K when S0 = S. Inside the GPS model both services are slowed by the same s_k.

p99 estimates: FCFS response time T = W + S is fitted by a Gamma distribution on its first two
moments (E[W^2] from Takacs' formula, E[S^3] from a Gamma fit of S) and the quantile is taken with
the Wilson-Hilferty approximation. Pure PS, and a time-shared device with more than one process
(whose slowdown varies during a request), use the exponential tail p99 = E[T] ln 100 (at least),
which the simulator shows to be conservative by 0-50% there.

One module, over 400 lines on purpose: every formula here works on the same Load and
Prediction values and the shared-device models are built from one another (fcfs_response under
exclusive_device and the slowed FCFS bounds, erlang_c under ps and the lower bounds); how busy
processes share cores, which only supplies speeds, is its own module (sharing.py).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .sharing import busy_fixed_point, core_shares

__all__ = [
    "Load",
    "Prediction",
    "erlang_c",
    "exclusive_device",
    "fcfs_ps_lower",
    "gamma_quantile",
    "shared_device",
    "shared_device_gps",
    "shared_device_independent",
    "cold_start_response",
    "with_cold_start",
    "shared_device_lower",
    "shared_device_priority",
    "shared_device_ps",
]

INFINITE = math.inf
_P99_EXP = math.log(100.0)


@dataclass(frozen=True, kw_only=True)
class Load:
    """One instance's demand on a device: Poisson rate and isolated service-time moments."""

    rate: float  # requests/s
    mean: float  # E[S], seconds
    m2: float  # E[S^2], seconds^2
    switch: float = 0.0  # one-model-at-a-time devices: overhead when the previous model differs
    cold_mean: float | None = None  # E[S0] of a request that finds its process idle (if slower)
    cold_m2: float | None = None  # E[S0^2]

    @property
    def busy(self) -> float:
        """Share of time the process is busy when alone: rho, or 1 - p0 with cold starts."""
        rho = self.rate * self.mean
        if self.cold_mean is None or rho >= 1.0:
            return rho
        return 1.0 - (1.0 - rho) / (1.0 - rho + self.rate * self.cold_mean)


@dataclass(frozen=True, kw_only=True)
class Prediction:
    """Predicted steady state of one instance: mean and p99 response time, device busy share."""

    mean: float
    p99: float
    utilisation: float  # this instance's share of the device's capacity


def erlang_c(servers: int, offered: float) -> float:
    """Probability an arrival waits in M/M/c with offered load a = l E[S] (a < c)."""
    if offered <= 0.0:
        return 0.0
    if offered >= servers:
        return 1.0
    term, total = 1.0, 1.0
    for n in range(1, servers):
        term *= offered / n
        total += term
    last = term * offered / servers / (1.0 - offered / servers)
    return last / (total + last)


def gamma_quantile(mean: float, variance: float, q: float) -> float:
    """q-quantile of a Gamma with this mean and variance (Wilson-Hilferty approximation)."""
    if mean <= 0.0 or not math.isfinite(mean):
        return mean
    if variance <= 0.0:
        return mean
    shape = mean * mean / variance
    scale = variance / mean
    z = _normal_quantile(q)
    cube = 1.0 - 1.0 / (9.0 * shape) + z * math.sqrt(1.0 / (9.0 * shape))
    return shape * scale * max(cube, 0.0) ** 3


@functools.cache
def _normal_quantile(q: float) -> float:
    """Inverse standard normal CDF by bisection on erf (cached: plans ask for one or two q)."""
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def _gamma_third_moment(mean: float, m2: float) -> float:
    """E[S^3] of the Gamma with these first two moments (deterministic when the variance is 0)."""
    variance = max(m2 - mean * mean, 0.0)
    scv = variance / (mean * mean) if mean > 0 else 0.0
    return mean**3 * (1.0 + scv) * (1.0 + 2.0 * scv)


def fcfs_response(
    rate: float,
    mean: float,
    m2: float,
    busy: float,
    total_rate: float,
    total_m2: float,
    total_m3: float,
    q: float = 0.99,
) -> Prediction:
    """M/G/1 FCFS response of a request with service (mean, m2) in a queue with total stream
    (total_rate, total_m2, total_m3) whose server is busy a fraction `busy`."""
    if busy >= 1.0:
        return Prediction(mean=INFINITE, p99=INFINITE, utilisation=busy)
    wait = total_rate * total_m2 / (2.0 * (1.0 - busy))
    wait2 = 2.0 * wait * wait + total_rate * total_m3 / (3.0 * (1.0 - busy))
    response = wait + mean
    variance = (wait2 - wait * wait) + max(m2 - mean * mean, 0.0)
    return Prediction(mean=response, p99=gamma_quantile(response, variance, q), utilisation=busy)


def exclusive_device(loads: Sequence[Load]) -> tuple[Prediction, ...]:
    """One-model-at-a-time device: FCFS M/G/1 with switch overhead (see module docstring)."""
    total = sum(load.rate for load in loads)
    if total <= 0.0:
        return tuple(Prediction(mean=load.mean, p99=load.mean, utilisation=0.0) for load in loads)
    means, m2s, m3s = [], [], []
    for load in loads:
        p = 1.0 - load.rate / total
        mean = load.mean + p * load.switch
        m2 = load.m2 + 2.0 * load.mean * p * load.switch + p * load.switch**2
        means.append(mean)
        m2s.append(m2)
        m3s.append(_gamma_third_moment(mean, m2))
    busy = sum(load.rate * mean for load, mean in zip(loads, means, strict=True))
    mix_m2 = sum(load.rate * m2 for load, m2 in zip(loads, m2s, strict=True)) / total
    mix_m3 = sum(load.rate * m3 for load, m3 in zip(loads, m3s, strict=True)) / total
    out = []
    for load, mean, m2 in zip(loads, means, m2s, strict=True):
        shared = fcfs_response(load.rate, mean, m2, busy, total, mix_m2, mix_m3)
        out.append(Prediction(mean=shared.mean, p99=shared.p99, utilisation=load.rate * mean))
    return tuple(out)


def shared_device_ps(loads: Sequence[Load], cores: int = 1) -> tuple[Prediction, ...]:
    """Plain M/G/c-PS over every request on the device (see module docstring)."""
    offered = sum(load.rate * load.mean for load in loads)
    rho = offered / cores
    if rho >= 1.0:
        return tuple(
            Prediction(mean=INFINITE, p99=INFINITE, utilisation=load.rate * load.mean / cores)
            for load in loads
        )
    stretch = 1.0 + erlang_c(cores, offered) / (cores * (1.0 - rho))
    return tuple(
        Prediction(
            mean=load.mean * stretch,
            p99=load.mean * stretch * _P99_EXP,
            utilisation=load.rate * load.mean / cores,
        )
        for load in loads
    )


def with_cold_start(load: Load, extra: float, tau: float) -> Load:
    """`load` whose requests take `extra` seconds more after an idle spell of length I, in the
    measured form extra (1 - e^(-I/tau)). Under Poisson arrivals the idle spell that a request
    ends is Exp(rate), so E[S0] = S + extra E[1 - e^(-I/tau)] = S + extra / (1 + rate tau)."""
    if extra <= 0.0:
        return load
    more = extra / (1.0 + load.rate * tau)
    return replace(
        load, cold_mean=load.mean + more, cold_m2=load.m2 + 2.0 * load.mean * more + more * more
    )


def cold_start_response(
    rate: float, mean: float, m2: float, cold_mean: float, cold_m2: float, q: float = 0.99
) -> Prediction:
    """M/G/1 FCFS whose requests that find the server idle take the cold service (Welch; see
    the module docstring). The p99 fits a Gamma on E[W] (exact) and a Takacs-style E[W^2] on
    the mixed service X, an approximation."""
    rho = rate * mean
    if rho >= 1.0:
        return Prediction(mean=INFINITE, p99=INFINITE, utilisation=1.0)
    idle = (1.0 - rho) / (1.0 - rho + rate * cold_mean)
    x1 = idle * cold_mean + (1.0 - idle) * mean
    x2 = idle * cold_m2 + (1.0 - idle) * m2
    wait = rate * x2 / (2.0 * (1.0 - rho))
    x3 = idle * _gamma_third_moment(cold_mean, cold_m2) + (1.0 - idle) * _gamma_third_moment(
        mean, m2
    )
    wait2 = 2.0 * wait * wait + rate * x3 / (3.0 * (1.0 - rho))
    variance = (wait2 - wait * wait) + max(x2 - x1 * x1, 0.0)
    response = wait + x1
    return Prediction(
        mean=response, p99=gamma_quantile(response, variance, q), utilisation=1 - idle
    )


def _slowed_fcfs(load: Load, speed: float, cores: int) -> Prediction:
    """M/G/1 FCFS of one process whose service runs at `speed` (Pollaczek-Khinchine, or Welch
    with cold starts)."""
    rho = load.rate * load.mean
    if speed <= 0.0:
        return Prediction(mean=INFINITE, p99=INFINITE, utilisation=rho / cores)
    if load.cold_mean is not None:
        cold_m2 = load.cold_m2 if load.cold_m2 is not None else load.cold_mean**2
        one = cold_start_response(
            load.rate, load.mean / speed, load.m2 / speed**2,
            load.cold_mean / speed, cold_m2 / speed**2,
        )  # fmt: skip
        return Prediction(
            mean=one.mean, p99=one.p99, utilisation=load.busy / cores
        )  # cold starts add work
    mean, m2 = load.mean / speed, load.m2 / speed**2
    one = fcfs_response(
        load.rate, mean, m2, load.rate * mean, load.rate, m2, _gamma_third_moment(mean, m2)
    )
    return Prediction(mean=one.mean, p99=one.p99, utilisation=rho / cores)


def shared_device_priority(loads: Sequence[Load], cores: int = 1) -> tuple[Prediction, ...]:
    """Bound 1: each process sees the others as if they had pre-emptive priority: it runs only
    while fewer than c others are busy, s_k = 1 - C(c, a_-k) (Erlang-C on the others' offered
    load a_-k = sum_(j!=k) rho_j; 0 when there are fewer than c others). Pessimistic for light
    processes next to heavy ones."""
    out = []
    for k, load in enumerate(loads):
        others = [o.busy for j, o in enumerate(loads) if j != k]
        blocked = erlang_c(cores, sum(others)) if len(others) >= cores else 0.0
        out.append(_slowed_fcfs(load, 1.0 - blocked, cores))
    return tuple(out)


def shared_device_independent(loads: Sequence[Load], cores: int = 1) -> tuple[Prediction, ...]:
    """Bound 2: others are busy independently with probabilities b_j from the fixed point
    b_k = rho_k / s_k, s_k = E[min(1, c / (1 + K_k))]; ignores that busy periods overlap more
    than by chance, so it is optimistic at high load."""
    rhos = [load.busy for load in loads]
    busy = busy_fixed_point(rhos, cores) if sum(rhos) < cores else None
    if busy is None:
        return tuple(
            Prediction(mean=INFINITE, p99=INFINITE, utilisation=rho / cores) for rho in rhos
        )
    return tuple(
        _slowed_fcfs(load, speed, cores)
        for load, speed in zip(loads, core_shares(busy, cores), strict=True)
    )


def _pk_mean(rate: float, mean: float, m2: float, speed: float) -> float:
    """Pollaczek-Khinchine mean response of one process slowed to `speed`."""
    if speed <= 0.0:
        return INFINITE
    mean, m2 = mean / speed, m2 / speed**2
    busy = rate * mean
    return INFINITE if busy >= 1.0 else mean + rate * m2 / (2.0 * (1.0 - busy))


def shared_device_lower(
    loads: Sequence[Load], cores: int = 1, model: str = "fcfs-ps", tight: bool = False
) -> tuple[float, ...]:
    """Cheap lower bounds of shared_device's mean latencies: the independent bound's speed
    replaced by 1, so no fixed point is solved; with `tight`, by the fixed point's first
    iterate from busy probabilities equal to the loads (its iterates only grow, so the speeds
    only fall)."""
    if model == "ps":
        if sum(load.rate * load.mean for load in loads) >= cores:
            return tuple(INFINITE for _ in loads)
        return tuple(p.mean for p in shared_device_ps(loads, cores))
    rates = [load.rate for load in loads]
    rhos = [load.rate * load.mean for load in loads]
    shares = core_shares(rhos, cores) if tight and len(loads) > cores else None
    return tuple(
        fcfs_ps_lower(
            rates, [load.mean for load in loads], [load.m2 for load in loads], cores, shares
        )
    )


def fcfs_ps_lower(
    rates: Sequence[float],
    means: Sequence[float],
    m2s: Sequence[float],
    cores: int,
    shares: Sequence[float] | None = None,
) -> list[float]:
    """shared_device_lower for fcfs-ps on plain sequences: per process, the geometric mean of
    its Pollaczek-Khinchine responses at the priority bound's speed and at `shares` (upper
    bounds of the independent bound's speeds; 1 when None), and, with more processes than
    cores, at least its M/G/c-PS response on the warm service."""
    rhos = [rate * mean for rate, mean in zip(rates, means, strict=True)]
    offered = sum(rhos)
    if offered >= cores:
        return [INFINITE] * len(rhos)
    crowded = len(rhos) > cores
    # crowded, fcfs-ps is at least M/G/c-PS on the work per request, which is at least on S
    stretch = 1.0 + erlang_c(cores, offered) / (cores - offered) if crowded else 0.0
    out = []
    for k, rho in enumerate(rhos):
        rate, mean, m2 = rates[k], means[k], m2s[k]
        blocked = erlang_c(cores, offered - rho) if crowded else 0.0
        high = _pk_mean(rate, mean, m2, 1.0 - blocked)
        alone = _pk_mean(rate, mean, m2, 1.0 if shares is None else min(shares[k], 1.0))
        out.append(max(math.sqrt(high * alone), mean * stretch))
    return out


def shared_device(
    loads: Sequence[Load], cores: int = 1, model: str = "fcfs-ps"
) -> tuple[Prediction, ...]:
    """Time-shared device with `cores` parallel units, by `model` (see the module docstring).

    "fcfs-ps": M/G/1 per process while each has a core; beyond that the larger of the GPS
    model and M/G/c-PS on the work per request. "ps": plain M/G/c-PS on the warm service.
    """
    if model == "ps":
        return shared_device_ps(loads, cores)
    if model != "fcfs-ps":
        raise ValueError(f"unknown shared-device model {model!r}; use 'fcfs-ps' or 'ps'")
    gps = shared_device_gps(loads, cores)
    if len(loads) <= cores:
        return gps
    shared = shared_device_ps([_worked(load) for load in loads], cores)
    return tuple(
        max(g, p, key=operator.attrgetter("mean")) for g, p in zip(gps, shared, strict=True)
    )


def _worked(load: Load) -> Load:
    """`load` as one service whose mean is its work per request, cold starts included."""
    if load.cold_mean is None or load.rate <= 0.0:
        return load
    mean = load.busy / load.rate
    return Load(rate=load.rate, mean=mean, m2=load.m2 * (mean / load.mean) ** 2)


def shared_device_gps(loads: Sequence[Load], cores: int = 1) -> tuple[Prediction, ...]:
    """Ideal GPS among per-process FCFS queues: the geometric mean of the two bounds above
    (mean and p99), which bracket that simulated system."""
    rho = sum(load.rate * load.mean for load in loads) / cores
    if rho >= 1.0:
        return shared_device_ps(loads, cores)
    high = shared_device_priority(loads, cores)
    low = shared_device_independent(loads, cores)
    out = []
    for h, lo in zip(high, low, strict=True):
        mean = math.sqrt(h.mean * lo.mean)
        p99 = math.sqrt(h.p99 * lo.p99)
        if len(loads) > 1:  # the slowdown itself varies: fall back to the exponential tail
            p99 = max(p99, mean * _P99_EXP)
        out.append(Prediction(mean=mean, p99=p99, utilisation=h.utilisation))
    return tuple(out)

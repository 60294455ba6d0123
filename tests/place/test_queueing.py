"""The queueing formulas against closed-form cases and the real edgeTPU measurements."""

from __future__ import annotations

import csv
import math
import random
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

from tf2aif.place.queueing import (
    Load,
    erlang_c,
    exclusive_device,
    gamma_quantile,
    shared_device,
    shared_device_gps,
    shared_device_independent,
    shared_device_lower,
    shared_device_priority,
    shared_device_ps,
    with_cold_start,
)

S = 0.010  # 10 ms


@pytest.mark.parametrize("rho", [0.1, 0.5, 0.8])
def test_single_process_is_exact_mm1(rho):
    # one process alone: M/M/1 mean response E[S] / (1 - rho) and exponential p99
    (p,) = shared_device([Load(rate=rho / S, mean=S, m2=2 * S * S)])
    assert p.mean == pytest.approx(S / (1 - rho), rel=1e-9)
    assert p.p99 == pytest.approx(S / (1 - rho) * math.log(100), rel=0.03)


@pytest.mark.parametrize("rho", [0.1, 0.5, 0.8])
def test_single_process_is_exact_md1(rho):
    (p,) = shared_device([Load(rate=rho / S, mean=S, m2=S * S)])
    assert p.mean == pytest.approx(S + rho * S / (2 * (1 - rho)), rel=1e-9)


def test_ps_formula_is_textbook_for_one_core():
    loads = [Load(rate=30, mean=S, m2=S * S), Load(rate=50, mean=0.004, m2=0.004**2)]
    rho = 30 * S + 50 * 0.004
    first, second = shared_device_ps(loads)
    assert first.mean == pytest.approx(S / (1 - rho))
    assert second.mean == pytest.approx(0.004 / (1 - rho))


def test_erlang_c_known_values():
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(4, 0.0) == 0.0


def test_ps_on_c_cores_uses_erlang_c():
    (p,) = shared_device_ps([Load(rate=100, mean=S, m2=S * S)], cores=2)
    assert p.mean == pytest.approx(S * (1 + (1 / 3) / (2 * 0.5)))


def test_fcfs_ps_is_the_larger_of_gps_and_ps_and_above_the_cheap_lower_bound():
    loads = [Load(rate=30, mean=S, m2=S * S), Load(rate=60, mean=0.004, m2=1.5 * 0.004**2)]
    mixed = shared_device(loads)
    gps = shared_device_gps(loads)
    ps = shared_device_ps(loads)
    high = shared_device_priority(loads)
    low = shared_device_independent(loads)
    lower = shared_device_lower(loads)
    for m, g, p, h, lo, lb in zip(mixed, gps, ps, high, low, lower, strict=True):
        assert lo.mean <= g.mean <= h.mean
        assert m.mean == max(g.mean, p.mean)
        assert lb <= m.mean + 1e-12
    # low-variance services: a fair share of the core is the slower of the two here
    assert [m.mean for m in mixed] == [p.mean for p in ps]


def test_fcfs_ps_keeps_a_process_alone_on_its_core_fcfs():
    loads = [Load(rate=rho / S, mean=S, m2=S * S) for rho in (0.5, 0.3)]
    for m, g in zip(shared_device(loads, cores=2), shared_device_gps(loads, cores=2), strict=True):
        assert m == g  # M/D/1 each, not processor sharing
    assert shared_device(loads[:1])[0].mean == pytest.approx(S * (1 + 0.5 / (2 * 0.5)))


def test_fcfs_ps_shares_the_work_of_cold_starts():
    warm = Load(rate=100, mean=0.002, m2=0.002**2)
    cold = with_cold_start(warm, extra=0.002, tau=0.01)
    other = Load(rate=50, mean=0.004, m2=0.004**2)
    (_, with_cold), (_, with_warm) = shared_device([cold, other]), shared_device([warm, other])
    offered = cold.busy + other.rate * other.mean
    assert with_cold.mean == pytest.approx(0.004 / (1 - offered))  # PS on the work per request
    assert with_cold.mean > with_warm.mean == pytest.approx(0.004 / (1 - 0.4))


def test_lower_bounds_never_exceed_the_prediction_on_random_devices():
    # the bounds rule options out before the fixed point: they must stay below it, tight or
    # not, with more processes than units or fewer
    rng = random.Random(7)
    for _ in range(2000):
        cores = rng.choice((1, 2, 4, 8))
        loads = []
        for _ in range(rng.randint(1, 12)):
            mean = rng.uniform(0.001, 0.05)
            loads.append(
                Load(
                    rate=rng.uniform(0.1, 1.0) * cores / 12 / mean,
                    mean=mean,
                    m2=mean**2 * rng.uniform(1, 3),
                )
            )
        predicted = [p.mean for p in shared_device(loads, cores)]
        for tight in (False, True):
            for bound, mean in zip(
                shared_device_lower(loads, cores, tight=tight), predicted, strict=True
            ):
                assert bound <= mean * (1 + 1e-12), (cores, loads, tight)


def test_overload_is_infinite():
    assert math.isinf(shared_device([Load(rate=120, mean=S, m2=S * S)])[0].mean)
    assert math.isinf(exclusive_device([Load(rate=120, mean=S, m2=S * S)])[0].mean)


def test_exclusive_without_switch_is_pollaczek_khinchine():
    loads = [Load(rate=20, mean=S, m2=S * S), Load(rate=30, mean=0.005, m2=0.005**2)]
    rho = 20 * S + 30 * 0.005
    wait = (20 * S * S + 30 * 0.005**2) / (2 * (1 - rho))
    first, second = exclusive_device(loads)
    assert first.mean == pytest.approx(wait + S)
    assert second.mean == pytest.approx(wait + 0.005)


def test_switch_overhead_inflates_by_probability_of_another_model():
    # two models at equal rates: each request switches with probability 1/2
    loads = [Load(rate=10, mean=S, m2=S * S, switch=0.004)] * 2
    first, _ = exclusive_device(loads)
    assert first.utilisation == pytest.approx(10 * (S + 0.5 * 0.004))


def test_gamma_quantile_of_an_exponential():
    # Wilson-Hilferty on shape 1: within 2% of the exact ln(100)
    assert gamma_quantile(1.0, 1.0, 0.99) == pytest.approx(math.log(100), rel=0.02)


EDGETPU = Path("/work/shared/data/ibis-edgetpu/queuing_tpu_inception_v3Xssd_mobilenet_v2.csv")
# isolated device service time and switch overhead, ms (from the data set's README)
EDGETPU_MODELS = {"inception_v3": (62.95, 19.39), "ssd_mobilenet_v2": (19.23, 24.63)}


def edgetpu_errors() -> list[float]:
    groups: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    with EDGETPU.open() as f:
        for row in csv.DictReader(f):
            groups[row["vary_rho"]][row["model"]].append(row)
    errors = []
    for by_model in groups.values():
        names = sorted(by_model)
        loads = [
            Load(
                rate=float(by_model[n][0]["input_rate"]),
                mean=EDGETPU_MODELS[n][0] / 1e3,
                m2=(EDGETPU_MODELS[n][0] / 1e3) ** 2,
                switch=EDGETPU_MODELS[n][1] / 1e3,
            )
            for n in names
        ]
        for name, prediction in zip(names, exclusive_device(loads), strict=True):
            measured = statistics.fmean(
                float(r["end_time"]) - float(r["start_time"]) for r in by_model[name]
            )
            errors.append(prediction.mean / measured - 1)
    return errors


@pytest.mark.skipif(not EDGETPU.exists(), reason="edgeTPU measurements not available")
def test_switch_model_matches_real_edgetpu_measurements():
    errors = [abs(e) for e in edgetpu_errors()]
    assert len(errors) == 10  # 2 models x 5 load levels
    assert statistics.median(errors) < 0.06
    assert max(errors) < 0.12


def test_cold_start_is_pollaczek_khinchine_when_cold_equals_warm():
    from tf2aif.place.queueing import cold_start_response, fcfs_response

    rate, mean, m2 = 80.0, 0.005, 0.005**2 * 1.2
    welch = cold_start_response(rate, mean, m2, mean, m2)
    pk = fcfs_response(rate, mean, m2, rate * mean, rate, m2, 0.0)
    assert welch.mean == pytest.approx(pk.mean, rel=1e-12)
    assert welch.utilisation == pytest.approx(rate * mean)


@pytest.mark.parametrize("rho", [0.1, 0.4, 0.7])
def test_cold_start_matches_a_lindley_simulation(rho):
    """Requests that find the server idle take the cold service: simulate the FCFS queue with
    Lindley's recursion and compare the mean response with Welch's formula."""
    import random

    from tf2aif.place.queueing import cold_start_response

    warm, cold = 0.005, 0.008  # deterministic warm service, exponential-ish cold one
    rate = rho / warm
    rng = random.Random(7)
    wait, total, n = 0.0, 0.0, 200_000
    for _ in range(n):
        service = rng.expovariate(1 / cold) if wait == 0.0 else warm
        total += wait + service
        wait = max(0.0, wait + service - rng.expovariate(rate))
    predicted = cold_start_response(rate, warm, warm**2, cold, 2 * cold**2).mean
    assert total / n == pytest.approx(predicted, rel=0.03)


def test_cold_starts_slow_a_shared_process_and_count_in_the_others_load():
    from tf2aif.place.queueing import Load, shared_device

    warm = Load(rate=40.0, mean=0.005, m2=0.005**2)
    cold = Load(rate=40.0, mean=0.005, m2=0.005**2, cold_mean=0.008, cold_m2=0.008**2)
    other = Load(rate=20.0, mean=0.01, m2=0.01**2)
    (alone_warm,), (alone_cold,) = shared_device([warm]), shared_device([cold])
    assert alone_cold.mean > alone_warm.mean
    # the neighbour of a process with cold starts sees a busier core
    assert shared_device([cold, other])[1].mean > shared_device([warm, other])[1].mean


def test_cold_starts_count_in_the_device_utilisation():
    from tf2aif.place.queueing import Load, shared_device

    warm = Load(rate=40.0, mean=0.005, m2=0.005**2)
    cold = Load(rate=40.0, mean=0.005, m2=0.005**2, cold_mean=0.008, cold_m2=0.008**2)
    assert shared_device([warm])[0].utilisation == pytest.approx(0.2)
    # the process is busy 1 - p0 of the time, p0 = (1 - 0.2) / (1 - 0.2 + 40 * 0.008)
    assert shared_device([cold])[0].utilisation == pytest.approx(1 - 0.8 / 1.12)

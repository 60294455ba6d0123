"""The discrete-event simulator against closed forms, and the models against the simulator."""

from __future__ import annotations

import statistics

import pytest

from tf2aif.place.queueing import Load, exclusive_device, shared_device, shared_device_gps
from tf2aif.place.simulate import SimStage, SimStation, SimStream, simulate_node

S = 0.010


def run(kind: str, specs, *, units: int = 1, horizon: float = 400.0, seed: int = 1):
    streams = [
        SimStream(
            name=str(i), rate=rate, stages=(SimStage(station=0, mean=mean, m2=m2, switch=switch),)
        )
        for i, (rate, mean, m2, switch) in enumerate(specs)
    ]
    results = simulate_node(
        [SimStation(kind=kind, units=units)], streams, horizon=horizon, seed=seed
    )
    return [results[str(i)] for i in range(len(specs))]


def test_one_process_simulates_mm1():
    (result,) = run("shared", [(60, S, 2 * S * S, 0.0)])
    assert result.mean == pytest.approx(S / (1 - 0.6), rel=0.05)
    assert result.half_width < 0.1 * result.mean


def test_one_process_simulates_md1():
    (result,) = run("shared", [(60, S, S * S, 0.0)])
    assert result.mean == pytest.approx(S + 0.6 * S / (2 * 0.4), rel=0.05)


def test_processor_sharing_simulates_mm1_ps_insensitively():
    # M/G/1-PS mean depends on E[S] only: deterministic service still gives E[S] / (1 - rho)
    (result,) = run("ps", [(60, S, S * S, 0.0)])
    assert result.mean == pytest.approx(S / (1 - 0.6), rel=0.06)


def test_exclusive_device_with_switches_matches_the_formula():
    specs = [(8, 0.020, 0.020**2, 0.015), (15, 0.010, 0.010**2, 0.010)]
    simulated = run("exclusive", specs, horizon=1500)
    predicted = exclusive_device([Load(rate=r, mean=m, m2=m2, switch=o) for r, m, m2, o in specs])
    for sim, pred in zip(simulated, predicted, strict=True):
        assert pred.mean == pytest.approx(sim.mean, rel=0.08)


MIXES = [  # (cores, [(rate, mean, scv)]) -- utilisation 0.3 to 0.7 per core
    (1, [(15, 0.010, 0.0), (40, 0.004, 0.0)]),
    (1, [(10, 0.010, 0.0), (25, 0.004, 0.5), (20, 0.006, 0.3)]),
    (1, [(20, 0.010, 0.0), (50, 0.004, 0.0), (10, 0.002, 0.0), (10, 0.010, 1.0)]),
    (2, [(30, 0.010, 0.0), (60, 0.004, 0.3), (40, 0.006, 0.0), (20, 0.020, 0.0)]),
]


@pytest.mark.parametrize(("cores", "mix"), MIXES)
def test_time_shared_model_tracks_the_simulated_per_process_fcfs(cores, mix):
    specs = [(rate, mean, mean * mean * (1 + scv), 0.0) for rate, mean, scv in mix]
    simulated = run("shared", specs, units=cores, horizon=300)
    loads = [Load(rate=r, mean=m, m2=m2) for r, m, m2, _ in specs]
    predicted = shared_device_gps(loads, cores)
    errors = [abs(p.mean / s.mean - 1) for p, s in zip(predicted, simulated, strict=True)]
    assert max(errors) < 0.25
    assert statistics.median(errors) < 0.15
    # the planner's model never promises less than this ideal system delivers
    for planned, ideal in zip(shared_device(loads, cores), simulated, strict=True):
        assert planned.mean >= ideal.mean - 2 * ideal.half_width

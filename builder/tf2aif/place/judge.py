"""Judge a placement by simulating every node's queues (simulate.py), not by the planner's formulas.

An app violates its SLO when its simulated mean response time exceeds the target by more than
the 95% confidence half-width (a statistically significant violation); `strict` counts every
simulated mean above the target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .inputs import Node
from .predict import Instance, cpu_work
from .simulate import SimStage, SimStation, SimStream, simulate_node

__all__ = ["Verdict", "judge"]


@dataclass(frozen=True, kw_only=True)
class Verdict:
    apps: int  # placed apps judged
    violations: int  # significant mean-SLO violations
    strict_violations: int
    worst_ratio: float  # max simulated mean / SLO over apps
    details: Mapping[str, tuple[float, float, float]]  # app -> (simulated mean, half-width, SLO)


def _node_streams(node: Node, instances: Sequence[Instance]):
    stations = [SimStation(kind="shared", units=node.cores)]
    if node.accelerator is not None:
        kind = "exclusive" if node.accelerator.sharing == "exclusive" else "shared"
        stations.append(SimStation(kind=kind, units=node.accelerator.units))
    streams = []
    for k, instance in enumerate(instances):
        p = instance.profile
        if node.accelerator is None:
            mean, m2 = cpu_work(node, p)
            stages = (SimStage(station=0, mean=mean, m2=m2),)
        else:
            device = SimStage(station=1, mean=p.service, m2=p.service_m2, switch=p.switch)
            cpu = (
                (SimStage(station=0, mean=p.processing, m2=p.processing_m2),)
                if p.processing > 0
                else ()
            )
            stages = (*cpu, device)
        streams.append(SimStream(name=str(k), rate=instance.rate, stages=stages))
    return stations, streams


def judge(
    nodes: Sequence[Node],
    instances: Mapping[str, Sequence[Instance]],
    *,
    min_requests: int = 400,
    max_requests: int = 40_000,
    seed: int = 0,
) -> Verdict:
    """Simulate each node long enough for `min_requests` of its slowest instance (bounded by
    `max_requests` in total) and compare each app's simulated mean with its SLO."""
    by_name = {node.name: node for node in nodes}
    details: dict[str, tuple[float, float, float]] = {}
    violations = strict = 0
    worst = 0.0
    for i, (name, placed) in enumerate(sorted(instances.items())):
        node = by_name[name]
        stations, streams = _node_streams(node, placed)
        total = sum(s.rate for s in streams)
        horizon = min(min_requests / min(s.rate for s in streams), max_requests / total)
        results = simulate_node(stations, streams, horizon=horizon, seed=seed + i)
        for k, instance in enumerate(placed):
            result = results[str(k)]
            for app in instance.apps:
                details[app.name] = (result.mean, result.half_width, app.slo)
                worst = max(worst, result.mean / app.slo)
                strict += result.mean > app.slo
                violations += result.mean - result.half_width > app.slo
    return Verdict(
        apps=len(details),
        violations=violations,
        strict_violations=strict,
        worst_ratio=worst,
        details=details,
    )

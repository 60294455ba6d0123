"""Predict every instance's latency on one node and check the node against SLOs, memory and caps.

A node's CPU is a time-shared device with `cores` units. On cpu/arm nodes a request's whole
work (model + pre/post-processing) runs there. On accelerated nodes the model runs on the
accelerator (time-shared or one-model-at-a-time) and the pre/post-processing is its own queue on
the CPU; the response time is the sum of the two stages' means (and of their p99s, which
over-estimates the p99 of the sum, on the safe side).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .inputs import App, Node, Profile
from .queueing import (
    Load,
    Prediction,
    exclusive_device,
    fcfs_ps_lower,
    shared_device,
    shared_device_lower,
    with_cold_start,
)
from .sharing import core_shares

__all__ = [
    "Instance",
    "NodeView",
    "alone_response",
    "capacity_violation",
    "cpu_work",
    "evaluate",
    "memory_violation",
    "surely_too_slow",
    "violation",
]


@dataclass(frozen=True, kw_only=True)
class Instance:
    """One inference server on a node: a model variant serving one or more apps."""

    model: str
    variant: str
    profile: Profile
    apps: tuple[App, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rate", sum(app.rate for app in self.apps))

    @property
    def rate(self) -> float:
        return self._rate


@dataclass(frozen=True, kw_only=True)
class NodeView:
    predictions: tuple[Prediction, ...]  # per instance, end to end
    cpu_utilisation: float
    accelerator_utilisation: float
    instance_utilisation: tuple[float, ...]  # each server process's own load on its device
    memory_mb: float
    accelerator_memory_mb: float


def cpu_work(node: Node, profile: Profile) -> tuple[float, float]:
    """(mean, second moment) of the CPU time one request needs on this node."""
    if node.accelerator is not None:
        return profile.processing, profile.processing_m2
    mean = profile.service + profile.processing
    m2 = profile.service_m2 + 2.0 * profile.service * profile.processing + profile.processing_m2
    return mean, m2


def _cpu_load(node: Node, instance: Instance) -> Load:
    """One instance's CPU demand; on cpu/arm nodes with the cold starts its profile measured
    (the lower bounds below leave them out: warm service is a lower bound of cold)."""
    mean, m2 = cpu_work(node, instance.profile)
    load = Load(rate=instance.rate, mean=mean, m2=m2)
    if node.accelerator is not None:
        return load
    return with_cold_start(load, instance.profile.cold_extra, instance.profile.cold_tau)


def _utilisation_only(loads: Sequence[Load], cores: int) -> tuple[Prediction, ...]:
    return tuple(
        Prediction(mean=0.0, p99=0.0, utilisation=load.rate * load.mean / cores) for load in loads
    )


def evaluate(
    node: Node, instances: Sequence[Instance], model: str = "fcfs-ps", latency: bool = True
) -> NodeView:
    """Predict the node; with latency=False only utilisation and memory (the knapsack's view)."""
    cpu_loads = [_cpu_load(node, i) for i in instances]
    shared = (
        shared_device if latency else lambda loads, units, _model: _utilisation_only(loads, units)
    )
    cpu = shared(cpu_loads, node.cores, model)
    if node.accelerator is None:
        device = [Prediction(mean=0.0, p99=0.0, utilisation=0.0) for _ in instances]
        per_process = [load.busy for load in cpu_loads]
    else:
        loads = _device_loads(instances)
        if node.accelerator.sharing == "exclusive":
            device = list(exclusive_device(loads))
            per_process = [p.utilisation for p in device]
        else:
            device = list(shared(loads, node.accelerator.units, model))
            per_process = [load.rate * load.mean for load in loads]
    predictions = tuple(
        Prediction(
            mean=c.mean + d.mean, p99=c.p99 + d.p99, utilisation=c.utilisation + d.utilisation
        )
        for c, d in zip(cpu, device, strict=True)
    )
    return NodeView(
        predictions=predictions,
        cpu_utilisation=sum(p.utilisation for p in cpu),
        accelerator_utilisation=sum(p.utilisation for p in device),
        instance_utilisation=tuple(per_process),
        memory_mb=sum(i.profile.memory_mb for i in instances),
        accelerator_memory_mb=sum(i.profile.accelerator_memory_mb for i in instances),
    )


def alone_response(app: App, profile: Profile) -> float:
    """Mean response of the app alone on this variant: M/G/1 with its own rate, device and
    processing as one service (what a knapsack packer can know without a co-location model)."""
    mean = profile.service + profile.processing
    m2 = profile.service_m2 + 2 * profile.service * profile.processing + profile.processing_m2
    busy = app.rate * mean
    return math.inf if busy >= 1.0 else mean + app.rate * m2 / (2.0 * (1.0 - busy))


def memory_violation(node: Node, instances: Sequence[Instance], view: NodeView) -> str:
    """Why the node is over memory or accelerator memory ('' if it is not)."""
    if view.memory_mb > node.memory_mb:
        return f"memory {view.memory_mb:.0f} > {node.memory_mb:.0f} MiB"
    limit = node.accelerator.memory_mb if node.accelerator else None
    if limit is not None and view.accelerator_memory_mb > limit:
        return f"accelerator memory {view.accelerator_memory_mb:.0f} > {limit:.0f} MiB"
    return ""


def capacity_violation(node: Node, instances: Sequence[Instance], view: NodeView) -> str:
    """Why the node is over memory, utilisation caps or a profile's max rate ('' if it is not)."""
    reason = memory_violation(node, instances, view)
    if reason:
        return reason
    if view.cpu_utilisation > node.cap:
        return f"CPU utilisation {view.cpu_utilisation:.2f} > cap {node.cap}"
    if view.accelerator_utilisation > node.cap:
        return f"accelerator utilisation {view.accelerator_utilisation:.2f} > cap {node.cap}"
    for instance, load in zip(instances, view.instance_utilisation, strict=True):
        if load > node.cap:
            return f"{instance.variant} server utilisation {load:.2f} > cap {node.cap}"
        if instance.profile.max_rate is not None and instance.rate > instance.profile.max_rate:
            return f"{instance.variant} rate {instance.rate:g} > max_rate {instance.profile.max_rate:g}"
    return ""


def violation(node: Node, instances: Sequence[Instance], view: NodeView) -> str:
    """Why the node is infeasible under the model ('' if every app meets every target)."""
    reason = capacity_violation(node, instances, view)
    if reason:
        return reason
    for instance, prediction in zip(instances, view.predictions, strict=True):
        for app in instance.apps:
            if prediction.mean > app.plan_slo:
                return f"{app.name}: predicted mean {prediction.mean * 1e3:.1f} ms > {app.plan_slo * 1e3:g} ms"
            if prediction.p99 > app.plan_p99:
                return f"{app.name}: predicted p99 {prediction.p99 * 1e3:.1f} ms > {app.plan_p99 * 1e3:g} ms"
    return ""


def surely_too_slow(
    node: Node, instances: Sequence[Instance], model: str = "fcfs-ps"
) -> tuple[App, ...]:
    """The apps whose planned mean target cheap lower bounds of the mean latencies already
    break (none: the full prediction, a fixed point per shared device, is needed). The bounds
    are tried loosest and cheapest first (see queueing.shared_device_lower)."""
    if model != "fcfs-ps":
        return _slow_apps(instances, _lower_bounds(node, instances, model))
    rates = [i.rate for i in instances]
    works = [cpu_work(node, i.profile) for i in instances]
    stages = [(node.cores, [w[0] for w in works], [w[1] for w in works])]
    fixed = [0.0] * len(instances)
    accelerator = node.accelerator
    if accelerator is not None:
        if accelerator.sharing == "exclusive":
            fixed = [p.mean for p in exclusive_device(_device_loads(instances))]
        else:
            profiles = [i.profile for i in instances]
            stages.append(
                (accelerator.units, [p.service for p in profiles], [p.service_m2 for p in profiles])
            )
    lower = fixed
    for units, means, m2s in stages:
        bounds = fcfs_ps_lower(rates, means, m2s, units)
        lower = [a + b for a, b in zip(lower, bounds, strict=True)]
    slow = _slow_apps(instances, lower)
    if slow or all(len(instances) <= units for units, _, _ in stages):
        return slow  # with no more processes than units the tighter bound is the same
    lower = fixed
    for units, means, m2s in stages:
        shares = (
            core_shares([r * m for r, m in zip(rates, means, strict=True)], units)
            if len(instances) > units
            else None
        )
        bounds = fcfs_ps_lower(rates, means, m2s, units, shares)
        lower = [a + b for a, b in zip(lower, bounds, strict=True)]
    return _slow_apps(instances, lower)


def _slow_apps(instances: Sequence[Instance], lower: Sequence[float]) -> tuple[App, ...]:
    return tuple(
        app
        for instance, bound in zip(instances, lower, strict=True)
        for app in instance.apps
        if bound > app.plan_slo
    )


def _device_loads(instances: Sequence[Instance]) -> list[Load]:
    return [
        Load(
            rate=i.rate,
            mean=i.profile.service,
            m2=i.profile.service_m2,
            switch=i.profile.switch,
        )
        for i in instances
    ]


def _lower_bounds(node: Node, instances: Sequence[Instance], model: str) -> list[float]:
    cpu_loads = [
        Load(rate=i.rate, mean=m, m2=m2) for i in instances for m, m2 in [cpu_work(node, i.profile)]
    ]
    lower = list(shared_device_lower(cpu_loads, node.cores, model))
    if node.accelerator is not None:
        loads = _device_loads(instances)
        if node.accelerator.sharing == "exclusive":
            device = [p.mean for p in exclusive_device(loads)]
        else:
            device = list(shared_device_lower(loads, node.accelerator.units, model))
        lower = [a + b for a, b in zip(lower, device, strict=True)]
    return lower

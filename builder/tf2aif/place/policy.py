"""Placement policies: which node and which variant each app gets.

Every policy walks the same candidates -- (node, variant, join an existing instance of the same
model and variant or start a new one) -- and differs in feasibility and order:

* first-fit: nodes in cluster order, the first node where the queueing model says every app on
  it (earlier ones included) still meets its targets; on that node the option adding the least
  memory, then the least utilisation.
* best-fit: among all feasible options, the one leaving its node the most utilised (tightest).
* spread: among all feasible options, the one leaving its node the least utilised.
* knapsack: first-fit on memory and utilisation caps only, no co-location model (the
  baseline); it only skips variants on which the app alone would miss its SLO.
* knapsack-memory: first-fit on memory and accelerator memory only -- no utilisation cap, no
  latency at all, one server per app: the knapsack hosting of Liang et al. (ACM TAAS 2023),
  the reference's baseline.

Online mode places apps in the order given and never moves one; batch mode sees all apps first
and places the heaviest (rate x fastest service time) first, i.e. first-fit decreasing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .cluster import Cluster, NodeState, Option, node_options
from .inputs import App, ModelSpec, Node
from .names import InstanceKey, instance_names
from .predict import (
    Instance,
    NodeView,
    alone_response,
    capacity_violation,
    evaluate,
    memory_violation,
    surely_too_slow,
    violation,
)

__all__ = ["POLICIES", "Assignment", "Placement", "candidates", "place", "place_one"]

POLICIES = ("first-fit", "best-fit", "spread", "knapsack", "knapsack-memory")
KNAPSACKS = ("knapsack", "knapsack-memory")
DEFAULT_HEADROOM = 0.1


@dataclass(frozen=True, kw_only=True)
class Assignment:
    app: str
    model: str
    node: str
    variant: str
    instance: str  # name of the server instance (shared by apps of the same model and variant)
    image: str
    rate: float  # the instance's total rate
    mean: float  # predicted mean response time, s (after every placement)
    p99: float
    cpu_utilisation: float  # of the node, after every placement
    accelerator_utilisation: float


@dataclass(frozen=True, kw_only=True)
class Placement:
    policy: str
    mode: str
    assignments: tuple[Assignment, ...]
    unplaced: tuple[tuple[str, str], ...]  # (app, why)
    instances: Mapping[str, tuple[Instance, ...]]  # node -> its instances
    names: Mapping[str, tuple[str, ...]]  # node -> the Kubernetes name of each of its instances

    def to_dict(self) -> dict:
        return {
            "policy": self.policy,
            "mode": self.mode,
            "assignments": [
                {
                    "app": a.app,
                    "model": a.model,
                    "node": a.node,
                    "variant": a.variant,
                    "instance": a.instance,
                    "image": a.image,
                    "instance_rate": round(a.rate, 6),
                    "predicted_mean_ms": _ms(a.mean),
                    "predicted_p99_ms": _ms(a.p99),
                    "node_cpu_utilisation": round(a.cpu_utilisation, 4),
                    "node_accelerator_utilisation": round(a.accelerator_utilisation, 4),
                }
                for a in self.assignments
            ],
            "unplaced": [{"app": app, "reason": why} for app, why in self.unplaced],
        }

    def servers(self) -> Iterator[tuple[str, str, Instance]]:
        """(node, instance name, instance) for every server instance, by node name."""
        for node in sorted(self.instances):
            yield from (
                (node, name, instance)
                for name, instance in zip(self.names[node], self.instances[node], strict=True)
            )


def _ms(seconds: float) -> float | None:
    return round(seconds * 1e3, 3) if math.isfinite(seconds) else None


def _others_fail(app: App, instances: Sequence[Instance], view: NodeView) -> bool:
    """True when an app other than `app` misses its target in this prediction."""
    for instance, prediction in zip(instances, view.predictions, strict=True):
        for other in instance.apps:
            if other is app:
                continue
            if prediction.mean > other.plan_slo or prediction.p99 > other.plan_p99:
                return True
    return False


def candidates(
    app: App, model: ModelSpec, cluster: Cluster, policy: str, queue_model: str
) -> Iterator[Option]:
    """Options in the order the policy tries them (lazily for first-fit)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    variants = [p for v, p in model.profiles.items() if app.allows(v)]
    if policy == "knapsack":  # no co-location model, but only variants meeting the SLO alone
        variants = [p for p in variants if alone_response(app, p) <= app.slo]
    found = cluster.candidates(
        app,
        variants,
        queue_model=queue_model,
        bounded=policy not in KNAPSACKS,
        memory_only=policy == "knapsack-memory",
    )
    states = cluster.states
    if policy in ("first-fit", *KNAPSACKS):
        orders = [index.orders[new | join] for _, index, _, new, join in found]
        if not orders:
            return
        memory_only = policy == "knapsack-memory"
        for order in np.unique(np.concatenate(orders)).tolist():
            yield from node_options(
                app, variants, states[order], order, not memory_only, not memory_only
            )
        return
    # best-fit, spread: every option at once, sorted as (utilisation, node order, join before
    # a new server, variant order) -- the order sorting each node's options and then all
    # options by (utilisation, node order) gives
    parts = []
    for j, index, utilisation, new, join in found:
        for fresh, mask in ((0, join), (1, new)):
            where = np.flatnonzero(mask)
            if where.size:
                parts.append(
                    (
                        utilisation[where],
                        index.orders[where],
                        np.full(where.size, fresh),
                        np.full(where.size, j),
                    )
                )
    if not parts:
        return
    utilisation, orders, fresh, which = (np.concatenate(x) for x in zip(*parts, strict=True))
    key = -utilisation if policy == "best-fit" else utilisation
    for k in np.lexsort((which, fresh, orders, key)).tolist():
        state = states[orders[k]]
        profile = variants[which[k]]
        yield Option(
            state=state,
            profile=profile,
            join=None if fresh[k] else state.where[(app.model, profile.variant)],
            utilisation=float(utilisation[k]),
            order=int(orders[k]),
        )


def place_one(app: App, model: ModelSpec, cluster: Cluster, policy: str, queue_model: str) -> str:
    """Place `app`; return '' on success, else why not."""
    knapsack = policy in KNAPSACKS
    check = {"knapsack": capacity_violation, "knapsack-memory": memory_violation}.get(
        policy, violation
    )
    tried = 0
    for option in candidates(app, model, cluster, policy, queue_model):
        tried += 1
        state = option.state
        if not knapsack and state.dominated(app, option.profile, option.join):
            continue
        instances = state.with_app(app.model, app, option.profile, option.join)
        slow = () if knapsack else surely_too_slow(state.node, instances, queue_model)
        if slow:
            others = any(other is not app for other in slow)
            if state.remember_failure(
                app, option.profile, option.join, others and state.cpu_only, others
            ):
                cluster.refresh(option.order)
            continue
        view = evaluate(state.node, instances, queue_model, latency=not knapsack)
        if not check(state.node, instances, view):
            state.commit(instances, app, option.profile, option.join, view, not knapsack)
            cluster.committed(option.order)
            return ""
        if knapsack:
            continue
        others = _others_fail(app, instances, view)
        capacity = bool(capacity_violation(state.node, instances, view))
        if state.remember_failure(app, option.profile, option.join, others, others or capacity):
            cluster.refresh(option.order)
    if not tried:
        return _no_option_reason(app, model, cluster.states)
    return f"no node meets the targets on any of {tried} options (node x variant)"


def _no_option_reason(app: App, model: ModelSpec, states: Sequence[NodeState]) -> str:
    variants = [v for v in model.profiles if app.allows(v)]
    if not variants:
        excluded = "; ".join(f"{v}: {why}" for v, why in model.excluded.items())
        return f"no eligible variant of {model.name}" + (f" ({excluded})" if excluded else "")
    platforms = sorted({v.split("/")[0] for v in variants})
    if not any(s.node.platform in platforms for s in states):
        return f"no node of platform {', '.join(platforms)}"
    return "every matching node is full (memory or utilisation cap)"


def place(
    apps: Sequence[App],
    models: Mapping[str, ModelSpec],
    nodes: Sequence[Node],
    *,
    policy: str = "first-fit",
    mode: str = "online",
    queue_model: str = "fcfs-ps",
    headroom: float = DEFAULT_HEADROOM,
) -> Placement:
    """Place `apps`; the planner aims at (1 - headroom) x every target, a margin for the
    models' error (see docs/placement.md), while Placement keeps the apps' own targets."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if not 0.0 <= headroom < 1.0:  # also refuses NaN
        raise ValueError(f"headroom must be at least 0 and below 1, got {headroom!r}")
    cluster = Cluster(nodes)
    states = cluster.states
    unplaced = []
    planned = [replace(app, headroom=headroom) for app in apps]
    for app in _ordered(planned, models, mode):
        why = place_one(app, models[app.model], cluster, policy, queue_model)
        if why:
            unplaced.append((app.name, why))
    return _freeze(policy, mode, apps, models, states, unplaced, queue_model)


def _ordered(apps: Sequence[App], models: Mapping[str, ModelSpec], mode: str) -> list[App]:
    if mode == "online":
        return list(apps)
    if mode != "batch":
        raise ValueError(f"unknown mode {mode!r}; use 'online' or 'batch'")

    def demand(app: App) -> float:
        services = [p.service + p.processing for p in models[app.model].profiles.values()]
        return app.rate * min(services, default=0.0)

    return sorted(apps, key=lambda a: (-demand(a), a.slo, a.name))


def _freeze(policy, mode, apps, models, states, unplaced, queue_model) -> Placement:
    used = [state for state in states if state.instances]
    keys = []
    for state in used:
        seen: dict[tuple[str, str], int] = {}
        for instance in state.instances:
            ordinal = seen.get((instance.model, instance.variant), 0)
            seen[(instance.model, instance.variant)] = ordinal + 1
            keys.append(
                InstanceKey(
                    model=instance.model,
                    variant=instance.variant,
                    node=state.node.name,
                    ordinal=ordinal,
                )
            )
    unique = iter(instance_names(keys))
    by_app: dict[str, Assignment] = {}
    instances: dict[str, tuple[Instance, ...]] = {}
    names: dict[str, tuple[str, ...]] = {}
    for state in used:
        instances[state.node.name] = tuple(state.instances)
        names[state.node.name] = tuple(next(unique) for _ in state.instances)
        view: NodeView = evaluate(state.node, state.instances, queue_model)
        for name, instance, prediction in zip(
            names[state.node.name], state.instances, view.predictions, strict=True
        ):
            for app in instance.apps:
                by_app[app.name] = Assignment(
                    app=app.name,
                    model=app.model,
                    node=state.node.name,
                    variant=instance.variant,
                    instance=name,
                    image=models[app.model].images.get(instance.variant, ""),
                    rate=instance.rate,
                    mean=prediction.mean,
                    p99=prediction.p99,
                    cpu_utilisation=view.cpu_utilisation,
                    accelerator_utilisation=view.accelerator_utilisation,
                )
    ordered = tuple(by_app[a.name] for a in apps if a.name in by_app)
    return Placement(
        policy=policy,
        mode=mode,
        assignments=ordered,
        unplaced=tuple(unplaced),
        instances=instances,
        names=names,
    )

"""Placement policies: which node and which variant each app gets.

Every policy walks the same candidates -- (node, variant, join an existing instance of the same
model and variant or start a new one) -- and differs in feasibility and order:

* first-fit: nodes in cluster order, the first node where the queueing model says every app on
  it (earlier ones included) still meets its targets; on that node the option adding the least
  memory, then the least utilisation.
* best-fit: among all feasible options, the one leaving its node the most utilised (tightest).
* spread: among all feasible options, the one leaving its node the least utilised.
* knapsack: first-fit on memory and utilisation caps only, no latency model (the baseline).

Online mode places apps in the order given and never moves one; batch mode sees all apps first
and places the heaviest (rate x fastest service time) first, i.e. first-fit decreasing.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .inputs import App, ModelSpec, Node, Profile
from .predict import Instance, NodeView, capacity_violation, cpu_work, evaluate, violation

__all__ = ["POLICIES", "Assignment", "Placement", "place"]

POLICIES = ("first-fit", "best-fit", "spread", "knapsack")


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


def _ms(seconds: float) -> float | None:
    return round(seconds * 1e3, 3) if math.isfinite(seconds) else None


class _NodeState:
    """Mutable while placing; frozen into Instances at the end."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.instances: list[Instance] = []
        self.memory = 0.0
        self.cpu = 0.0  # busy cores
        self.accelerator = 0.0  # busy units (without switch overheads)
        self.means: list[float] = []  # current predicted mean per instance
        # Options that failed since the last commit: (model, variant, join, rate, slo, p99 slo).
        # Latency grows with rate, so an app of the same model asking more rate for a tighter
        # target fails too, without solving the queues again.
        self.failed: list[tuple] = []

    def precheck(self, app: App, profile: Profile, join: bool) -> float | None:
        """Utilisation after adding, or None when memory or a cap already rules it out."""
        node = self.node
        if not join and self.memory + profile.memory_mb > node.memory_mb:
            return None
        cpu = (self.cpu + app.rate * cpu_work(node, profile)[0]) / node.cores
        accelerator = 0.0
        if node.accelerator is not None:
            accelerator = (self.accelerator + app.rate * profile.service) / node.accelerator.units
        utilisation = max(cpu, accelerator)
        return utilisation if utilisation <= node.cap else None

    def with_app(self, model: str, app: App, profile: Profile, join: int | None) -> list[Instance]:
        instances = list(self.instances)
        if join is None:
            instances.append(Instance(model=model, variant=profile.variant, profile=profile, apps=(app,)))
        else:
            old = instances[join]
            instances[join] = Instance(model=model, variant=old.variant, profile=old.profile, apps=(*old.apps, app))
        return instances

    def dominated(self, app: App, profile: Profile, join: int | None) -> bool:
        """True when a cheap bound or an earlier failure proves this option infeasible."""
        if join is not None and self.means[join] > app.slo:
            return True  # joining only adds load to an instance already too slow for this app
        p99 = app.p99_slo if app.p99_slo is not None else math.inf
        for model, variant, joined, rate, slo, fp99 in self.failed:
            if (
                model == app.model
                and variant == profile.variant
                and joined == (join is not None)
                and app.rate >= rate
                and app.slo <= slo
                and p99 <= fp99
            ):
                return True
        return False

    def remember_failure(self, app: App, profile: Profile, join: int | None) -> None:
        p99 = app.p99_slo if app.p99_slo is not None else math.inf
        self.failed.append((app.model, profile.variant, join is not None, app.rate, app.slo, p99))

    def commit(self, instances: list[Instance], app: App, profile: Profile, join: int | None, view) -> None:
        self.instances = instances
        self.means = [p.mean for p in view.predictions]
        self.failed = []
        if join is None:
            self.memory += profile.memory_mb
        self.cpu += app.rate * cpu_work(self.node, profile)[0]
        self.accelerator += app.rate * profile.service if self.node.accelerator else 0.0


@dataclass(frozen=True, kw_only=True)
class _Option:
    state: _NodeState
    profile: Profile
    join: int | None
    utilisation: float
    order: int  # node position in the cluster


def _options(app: App, model: ModelSpec, states: Sequence[_NodeState], by_platform) -> Iterable[_Option]:
    variants = [p for v, p in model.profiles.items() if app.allows(v)]
    for profile in variants:
        for order, state in by_platform.get(profile.platform, ()):
            if any(state.node.labels.get(k) != v for k, v in app.node_selector.items()):
                continue
            join = next(
                (i for i, inst in enumerate(state.instances) if inst.model == app.model and inst.variant == profile.variant),
                None,
            )
            for choice in (join, None) if join is not None else (None,):
                utilisation = state.precheck(app, profile, choice is not None)
                if utilisation is not None:
                    yield _Option(state=state, profile=profile, join=choice, utilisation=utilisation, order=order)


def _ranked(policy: str, options: list[_Option]) -> list[_Option]:
    if policy in ("first-fit", "knapsack"):
        return sorted(options, key=lambda o: (o.order, o.join is None and o.profile.memory_mb, o.utilisation))
    if policy == "best-fit":
        return sorted(options, key=lambda o: (-o.utilisation, o.order))
    if policy == "spread":
        return sorted(options, key=lambda o: (o.utilisation, o.order))
    raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")


def _place_one(app: App, model: ModelSpec, states, by_platform, policy: str, queue_model: str) -> str:
    """Place `app`; return '' on success, else why not."""
    options = _ranked(policy, list(_options(app, model, states, by_platform)))
    if not options:
        return _no_option_reason(app, model, by_platform)
    knapsack = policy == "knapsack"
    check = capacity_violation if knapsack else violation
    for option in options:
        state = option.state
        if not knapsack and state.dominated(app, option.profile, option.join):
            continue
        instances = state.with_app(app.model, app, option.profile, option.join)
        view = evaluate(state.node, instances, queue_model, latency=not knapsack)
        if not check(state.node, instances, view):
            state.commit(instances, app, option.profile, option.join, view)
            return ""
        state.remember_failure(app, option.profile, option.join)
    return f"no node meets the targets on any of {len(options)} options (node x variant)"


def _no_option_reason(app: App, model: ModelSpec, by_platform) -> str:
    variants = [v for v in model.profiles if app.allows(v)]
    if not variants:
        excluded = "; ".join(f"{v}: {why}" for v, why in model.excluded.items())
        return f"no eligible variant of {model.name}" + (f" ({excluded})" if excluded else "")
    platforms = sorted({v.split("/")[0] for v in variants})
    if not any(by_platform.get(p) for p in platforms):
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
) -> Placement:
    _ranked(policy, [])  # reject unknown policy names before any work
    states = [_NodeState(node) for node in nodes]
    by_platform: dict[str, list[tuple[int, _NodeState]]] = collections.defaultdict(list)
    for order, state in enumerate(states):
        by_platform[state.node.platform].append((order, state))
    unplaced = []
    for app in _ordered(apps, models, mode):
        why = _place_one(app, models[app.model], states, by_platform, policy, queue_model)
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
    by_app: dict[str, Assignment] = {}
    instances: dict[str, tuple[Instance, ...]] = {}
    for state in states:
        if not state.instances:
            continue
        instances[state.node.name] = tuple(state.instances)
        view: NodeView = evaluate(state.node, state.instances, queue_model)
        for instance, prediction in zip(state.instances, view.predictions, strict=True):
            name = instance_name(instance, state.node)
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
    return Placement(policy=policy, mode=mode, assignments=ordered, unplaced=tuple(unplaced), instances=instances)


def instance_name(instance: Instance, node: Node) -> str:
    """DNS-1123 name of a server instance: model, variant and node, at most 63 characters."""
    raw = f"{instance.model}-{instance.variant.replace('/', '-')}-{node.name}".lower()
    clean = "".join(c if c.isalnum() or c == "-" else "-" for c in raw).strip("-")
    if len(clean) <= 63:
        return clean
    import hashlib

    digest = hashlib.sha256(clean.encode()).hexdigest()[:8]
    return f"{clean[:54].rstrip('-')}-{digest}"

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

Online mode places apps in the order given and never moves one; batch mode sees all apps first
and places the heaviest (rate x fastest service time) first, i.e. first-fit decreasing.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from .index import FreeIndex
from .inputs import App, ModelSpec, Node, Profile
from .predict import (
    Instance,
    NodeView,
    capacity_violation,
    cpu_work,
    evaluate,
    surely_too_slow,
    violation,
)
from .queueing import erlang_c

__all__ = ["POLICIES", "Assignment", "Placement", "place"]

POLICIES = ("first-fit", "best-fit", "spread", "knapsack")
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
        self.accelerator = 0.0  # busy accelerator units (with switch overheads once known)
        self.accelerator_offered = 0.0  # without switch overheads
        self.means: list[float] = []  # current predicted mean per instance
        self.where: dict[tuple[str, str], int] = {}  # (model, variant) -> instance position
        self.process_load: list[float] = []  # each instance's own load on its device
        # Options that failed since the last commit, (model, variant, join) -> [(rate, slo,
        # p99 slo)]. Latency grows with rate, so an app of the same model asking more rate for
        # a tighter target fails too, without solving the queues again.
        self.failed: dict[tuple[str, str, bool], list[tuple[float, float, float]]] = {}
        # Smallest load (on the model's device) a new server failed to add since the last
        # commit because an app already here would miss its target: the earlier apps' latencies
        # depend on the newcomer only through its load, so anything heavier fails as well.
        self.fail_load = math.inf

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
            instances.append(
                Instance(model=model, variant=profile.variant, profile=profile, apps=(app,))
            )
        else:
            old = instances[join]
            instances[join] = Instance(
                model=model, variant=old.variant, profile=old.profile, apps=(*old.apps, app)
            )
        return instances

    def kind(self) -> tuple:
        node = self.node
        return (
            node.platform,
            node.cores,
            node.memory_mb,
            node.accelerator,
            tuple(sorted(node.labels.items())),
            node.cap,
        )

    def dominated(self, app: App, profile: Profile, join: int | None) -> bool:
        """True when a cheap bound or an earlier failure proves this option infeasible."""
        if join is not None and self.means[join] > app.plan_slo:
            return True  # joining only adds load to an instance already too slow for this app
        p99 = app.plan_p99
        for rate, slo, fp99 in self.failed.get((app.model, profile.variant, join is not None), ()):
            if app.rate >= rate and app.plan_slo <= slo and p99 <= fp99:
                return True
        return False

    def remember_failure(
        self, app: App, profile: Profile, join: int | None, others: bool = False
    ) -> bool:
        """Record a failed option; True when the node's FreeIndex entry changed."""
        key = (app.model, profile.variant, join is not None)
        entry = (app.rate, app.plan_slo, app.plan_p99)
        frontier = [
            f
            for f in self.failed.get(key, ())
            if not (f[0] >= entry[0] and f[1] <= entry[1] and f[2] <= entry[2])
        ]
        self.failed[key] = [*frontier, entry]  # keep only failures no other one implies
        if others and join is None:
            load = app.rate * self.device_work(profile)
            if load < self.fail_load:
                self.fail_load = load
                return True
        return False

    def may_join(self, app: App, profile: Profile) -> bool:
        """Cheap necessary condition for joining the instance of (model, variant) here."""
        i = self.where.get((app.model, profile.variant))
        if i is None or self.means[i] > app.plan_slo:
            return False
        return self.process_load[i] + app.rate * self.device_work(profile) <= self.node.cap

    def device_work(self, profile: Profile) -> float:
        """Mean time a request occupies the device the model runs on."""
        return (
            profile.service
            if self.node.accelerator is not None
            else profile.service + profile.processing
        )

    def free(self) -> tuple[float, ...]:
        """Free memory, CPU cores and accelerator units under the cap, and the best speed s a
        new server could get on the model's device (for the FreeIndex).

        With s = 1 - C(c, current offered load) (1 while fewer servers than units), a new
        instance of mean service S has predicted mean >= sqrt(S / s * S) = S / sqrt(s), so it
        can only meet SLO T where s >= (S / T)^2."""
        node = self.node
        accelerator = math.inf
        if node.accelerator is not None:
            accelerator = node.cap * node.accelerator.units - self.accelerator
            if node.accelerator.sharing == "exclusive":
                speed = 1.0
            else:
                speed = self._speed(self.accelerator_offered, node.accelerator.units)
        else:
            speed = self._speed(self.cpu, node.cores)
        return (
            node.memory_mb - self.memory,
            node.cap * node.cores - self.cpu,
            accelerator,
            speed,
            self.fail_load,
        )

    def _speed(self, offered: float, units: int) -> float:
        return 1.0 - erlang_c(units, offered) if len(self.instances) >= units else 1.0

    def commit(
        self, instances: list[Instance], app: App, profile: Profile, join: int | None, view
    ) -> None:
        self.instances = instances
        self.means = [p.mean for p in view.predictions]
        self.process_load = list(view.instance_utilisation)
        self.where = {(inst.model, inst.variant): i for i, inst in enumerate(instances)}
        self.failed = {}
        self.fail_load = math.inf
        if join is None:
            self.memory += profile.memory_mb
        self.cpu += app.rate * cpu_work(self.node, profile)[0]
        if self.node.accelerator is not None:
            self.accelerator_offered += app.rate * profile.service
            # switch overheads only grow with more load: the current value bounds later ones
            self.accelerator = view.accelerator_utilisation * self.node.accelerator.units


@dataclass(frozen=True, kw_only=True)
class _Option:
    state: _NodeState
    profile: Profile
    join: int | None
    utilisation: float
    order: int  # node position in the cluster


def _node_options(
    app: App, variants: Sequence[Profile], state: _NodeState, order: int
) -> list[_Option]:
    """This node's options for `app` that pass the cheap memory/utilisation precheck."""
    if any(state.node.labels.get(k) != v for k, v in app.node_selector.items()):
        return []
    out = []
    for profile in variants:
        if profile.platform != state.node.platform:
            continue
        join = state.where.get((app.model, profile.variant))
        for choice in (join, None) if join is not None else (None,):
            utilisation = state.precheck(app, profile, choice is not None)
            if utilisation is not None:
                out.append(
                    _Option(
                        state=state,
                        profile=profile,
                        join=choice,
                        utilisation=utilisation,
                        order=order,
                    )
                )
    # join before starting a new server (no extra memory), then the least added utilisation
    return sorted(out, key=lambda o: (o.join is None, o.utilisation))


class _Cluster:
    """The node states plus what makes first-fit fast: one FreeIndex per platform and, per
    (model, variant), the nodes already running that server (joins need no free memory)."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.states = [_NodeState(node) for node in nodes]
        self.platform_orders: dict[str, list[int]] = {}
        for order, state in enumerate(self.states):
            self.platform_orders.setdefault(state.node.platform, []).append(order)
        self.indexes = {
            platform: FreeIndex([self.states[o].free() for o in orders])
            for platform, orders in self.platform_orders.items()
        }
        self.position = {
            o: i for orders in self.platform_orders.values() for i, o in enumerate(orders)
        }
        self.hosting: dict[tuple[str, str], list[int]] = {}

    def refresh(self, order: int) -> None:
        state = self.states[order]
        self.indexes[state.node.platform].update(self.position[order], state.free())

    def committed(self, order: int, model: str, variant: str) -> None:
        self.refresh(order)
        hosts = self.hosting.setdefault((model, variant), [])
        if order not in hosts:
            bisect.insort(hosts, order)

    def _joinable(self, app: App, profile: Profile) -> Iterator[int]:
        hosts = self.hosting.get((app.model, profile.variant), ())
        return (o for o in hosts if self.states[o].may_join(app, profile))

    def first_fit_orders(
        self, app: App, variants: Sequence[Profile], queue_model: str
    ) -> Iterator[int]:
        """Node positions that may fit `app`, in cluster order, each once."""
        streams = []
        for platform in sorted({p.platform for p in variants}):
            orders = self.platform_orders.get(platform)
            if not orders:
                continue
            mine = [p for p in variants if p.platform == platform]
            accelerated = self.states[orders[0]].node.accelerator is not None
            device_time = [p.service if accelerated else p.service + p.processing for p in mine]
            need = (
                min(p.memory_mb for p in mine),
                min(
                    app.rate * (p.processing if accelerated else p.service + p.processing)
                    for p in mine
                ),
                min(app.rate * p.service for p in mine) if accelerated else 0.0,
                min(device_time) ** 2 / app.plan_slo**2 if queue_model == "fcfs-ps" else 0.0,
                min(app.rate * t for t in device_time) * (1.0 + 1e-9) if queue_model else 0.0,
            )
            streams.append(_mapped(orders, self.indexes[platform].fits(need)))
            for p in mine:
                streams.append(self._joinable(app, p))
        last = None
        for order in heapq.merge(*streams):
            if order != last:
                yield order
                last = order


def _others_fail(app: App, instances: Sequence[Instance], view: NodeView) -> bool:
    """True when an app other than `app` misses its target in this prediction."""
    for instance, prediction in zip(instances, view.predictions, strict=True):
        for other in instance.apps:
            if other is app:
                continue
            if prediction.mean > other.plan_slo or prediction.p99 > other.plan_p99:
                return True
    return False


def _alone(app: App, profile: Profile) -> float:
    """Mean response of the app alone on this variant: M/G/1 with its own rate, device and
    processing as one service (what a knapsack packer can know without a co-location model)."""
    mean = profile.service + profile.processing
    m2 = profile.service_m2 + 2 * profile.service * profile.processing + profile.processing_m2
    busy = app.rate * mean
    return math.inf if busy >= 1.0 else mean + app.rate * m2 / (2.0 * (1.0 - busy))


def _mapped(orders: Sequence[int], positions: Iterator[int]) -> Iterator[int]:
    return (orders[i] for i in positions)


def _candidates(
    app: App, model: ModelSpec, cluster: _Cluster, policy: str, queue_model: str
) -> Iterator[_Option]:
    """Options in the order the policy tries them (lazily for first-fit)."""
    variants = [p for v, p in model.profiles.items() if app.allows(v)]
    if policy == "knapsack":  # no co-location model, but only variants meeting the SLO alone
        variants = [p for p in variants if _alone(app, p) <= app.slo]
    platforms = {p.platform for p in variants}
    states = cluster.states
    if policy in ("first-fit", "knapsack"):
        for order in cluster.first_fit_orders(
            app, variants, "" if policy == "knapsack" else queue_model
        ):
            yield from _node_options(app, variants, states[order], order)
        return
    options = []
    empty_seen: set[tuple] = set()
    for order, state in enumerate(states):
        if state.node.platform not in platforms:
            continue
        if not state.instances:  # identical empty nodes are interchangeable: try one of each kind
            kind = state.kind()
            if kind in empty_seen:
                continue
            empty_seen.add(kind)
        options.extend(_node_options(app, variants, state, order))
    if policy == "best-fit":
        options.sort(key=lambda o: (-o.utilisation, o.order))
    elif policy == "spread":
        options.sort(key=lambda o: (o.utilisation, o.order))
    else:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    yield from options


def _place_one(app: App, model: ModelSpec, cluster: _Cluster, policy: str, queue_model: str) -> str:
    """Place `app`; return '' on success, else why not."""
    knapsack = policy == "knapsack"
    check = capacity_violation if knapsack else violation
    tried = 0
    for option in _candidates(app, model, cluster, policy, queue_model):
        tried += 1
        state = option.state
        if not knapsack and state.dominated(app, option.profile, option.join):
            continue
        instances = state.with_app(app.model, app, option.profile, option.join)
        if not knapsack and surely_too_slow(state.node, instances, queue_model):
            state.remember_failure(app, option.profile, option.join)
            continue
        view = evaluate(state.node, instances, queue_model, latency=not knapsack)
        if not check(state.node, instances, view):
            state.commit(instances, app, option.profile, option.join, view)
            cluster.committed(option.order, app.model, option.profile.variant)
            return ""
        if state.remember_failure(
            app, option.profile, option.join, _others_fail(app, instances, view)
        ):
            cluster.refresh(option.order)
    if not tried:
        return _no_option_reason(app, model, cluster.states)
    return f"no node meets the targets on any of {tried} options (node x variant)"


def _no_option_reason(app: App, model: ModelSpec, states: Sequence[_NodeState]) -> str:
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
    cluster = _Cluster(nodes)
    states = cluster.states
    unplaced = []
    planned = [replace(app, headroom=headroom) for app in apps]
    for app in _ordered(planned, models, mode):
        why = _place_one(app, models[app.model], cluster, policy, queue_model)
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
    return Placement(
        policy=policy, mode=mode, assignments=ordered, unplaced=tuple(unplaced), instances=instances
    )


def instance_name(instance: Instance, node: Node) -> str:
    """DNS-1123 name of a server instance: model, variant and node, at most 63 characters."""
    raw = f"{instance.model}-{instance.variant.replace('/', '-')}-{node.name}".lower()
    clean = "".join(c if c.isalnum() or c == "-" else "-" for c in raw).strip("-")
    if len(clean) <= 63:
        return clean
    import hashlib

    digest = hashlib.sha256(clean.encode()).hexdigest()[:8]
    return f"{clean[:54].rstrip('-')}-{digest}"

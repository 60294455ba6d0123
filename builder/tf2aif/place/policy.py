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

from .index import PlatformIndex
from .inputs import App, ModelSpec, Node, Profile
from .names import InstanceKey, instance_names
from .predict import (
    Instance,
    NodeView,
    capacity_violation,
    cpu_work,
    evaluate,
    memory_violation,
    surely_too_slow,
    violation,
)
from .queueing import _poisson_binomial, _speed, _speeds, erlang_c

__all__ = ["POLICIES", "Assignment", "Placement", "place"]

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
        # Upper bounds of the independent bound's speed (queueing.shared_device_independent)
        # of a new server, and of each instance, from busy probabilities equal to the loads:
        # the fixed point only raises them, and more load only lowers the speed.
        self.share = 1.0
        self.shares: list[float] = []
        # Options that failed, (model, variant, join) -> [(rate, slo, p99 slo)]. Latency grows
        # with rate, so an app of the same model asking more rate for a tighter target fails
        # too, without solving the queues again. It grows with the node's load as well, so a
        # failure stays one after later placements on the node (but a join goes to the
        # model's newest server, so join failures go when a second server starts).
        self.failed: dict[tuple[str, str, bool], list[tuple[float, float, float]]] = {}
        # Smallest load (on the model's device) a new server failed to add because an app
        # already here would miss its target: the earlier apps' latencies depend on the
        # newcomer only through its load, so anything heavier fails as well. On a node without
        # accelerator that is exact (the newcomer's CPU load is all the others see) and it
        # outlives commits; with an accelerator it only holds until the next commit.
        self.fail_load = math.inf
        self.cpu_only = node.accelerator is None
        # Smallest rate of (model, variant, join) that failed whatever the newcomer's own
        # targets: a cap or max rate was crossed, or an app other than the newcomer missed its
        # target. Both only depend on the newcomer's rate (its profile is fixed by the
        # variant), so any app of this model and variant asking as much fails too.
        self.fail_rate: dict[tuple[str, str, bool], float] = {}

    def precheck(self, app: App, profile: Profile, join: bool, capped: bool = True) -> float | None:
        """Utilisation after adding, or None when memory or a cap (if `capped`) already rules
        it out."""
        node = self.node
        if not join and self.memory + profile.memory_mb > node.memory_mb:
            return None
        cpu = (self.cpu + app.rate * cpu_work(node, profile)[0]) / node.cores
        accelerator = 0.0
        if node.accelerator is not None:
            accelerator = (self.accelerator + app.rate * profile.service) / node.accelerator.units
        utilisation = max(cpu, accelerator)
        return utilisation if utilisation <= node.cap or not capped else None

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
        key = (app.model, profile.variant, join is not None)
        if app.rate >= self.fail_rate.get(key, math.inf):
            return True
        p99 = app.plan_p99
        for rate, slo, fp99 in self.failed.get((app.model, profile.variant, join is not None), ()):
            if app.rate >= rate and app.plan_slo <= slo and p99 <= fp99:
                return True
        return False

    def remember_failure(
        self,
        app: App,
        profile: Profile,
        join: int | None,
        others: bool = False,
        any_slo: bool = False,
    ) -> bool:
        """Record a failed option; True when the node's index entries changed. `others`: an
        app already here missed its target; `any_slo`: the option fails whatever the newcomer's
        own targets (a cap, or another app missing its target)."""
        key = (app.model, profile.variant, join is not None)
        changed = False
        if any_slo and app.rate < self.fail_rate.get(key, math.inf):
            self.fail_rate[key] = app.rate
            changed = True
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
        return changed

    def device_work(self, profile: Profile) -> float:
        """Mean time a request occupies the device the model runs on."""
        return (
            profile.service
            if self.node.accelerator is not None
            else profile.service + profile.processing
        )

    def speed(self) -> float:
        """The best speed s a new server could get on the model's device (for the index).

        With s = 1 - C(c, current offered load) (1 while fewer servers than units), a new
        instance of mean service S has predicted mean >= sqrt(S / s * S) = S / sqrt(s), so it
        can only meet SLO T where s >= (S / T)^2."""
        node = self.node
        if node.accelerator is not None:
            if node.accelerator.sharing == "exclusive":
                return 1.0
            return self._speed(self.accelerator_offered, node.accelerator.units)
        return self._speed(self.cpu, node.cores)

    def _speed(self, offered: float, units: int) -> float:
        return 1.0 - erlang_c(units, offered) if len(self.instances) >= units else 1.0

    def commit(
        self,
        instances: list[Instance],
        app: App,
        profile: Profile,
        join: int | None,
        view,
        shares: bool = True,
    ) -> None:
        """Take the option; `shares`: compute the share bounds (only the latency bounds of
        the model-driven policies read them)."""
        self.instances = instances
        self.means = [p.mean for p in view.predictions]
        self.process_load = list(view.instance_utilisation)
        node = self.node
        if not shares or (node.accelerator is not None and node.accelerator.sharing == "exclusive"):
            self.share, self.shares = 1.0, [1.0] * len(instances)
        else:
            units = node.cores if node.accelerator is None else node.accelerator.units
            self.share = _speed(_poisson_binomial(self.process_load), units)
            self.shares = _speeds(self.process_load, units)
        if join is None and (model := (app.model, profile.variant)) in self.where:
            # a second server of this model and variant: joins now go to it, not the first
            self.fail_rate.pop((*model, True), None)
            self.failed.pop((*model, True), None)
        self.where = {(inst.model, inst.variant): i for i, inst in enumerate(instances)}
        if not self.cpu_only:
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
    app: App,
    variants: Sequence[Profile],
    state: _NodeState,
    order: int,
    capped: bool = True,
    joins: bool = True,
) -> list[_Option]:
    """This node's options for `app` that pass the cheap memory/utilisation precheck."""
    if any(state.node.labels.get(k) != v for k, v in app.node_selector.items()):
        return []
    out = []
    for profile in variants:
        if profile.platform != state.node.platform:
            continue
        join = state.where.get((app.model, profile.variant)) if joins else None
        for choice in (join, None) if join is not None else (None,):
            utilisation = state.precheck(app, profile, choice is not None, capped)
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
    """The node states plus what makes the policies fast: one PlatformIndex per platform,
    mirroring the states as arrays so the candidate nodes of an app are found in numpy."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.states = [_NodeState(node) for node in nodes]
        platform_orders: dict[str, list[int]] = {}
        for order, state in enumerate(self.states):
            platform_orders.setdefault(state.node.platform, []).append(order)
        self.indexes = {
            platform: PlatformIndex(
                orders,
                [self.states[o].node for o in orders],
                [self.states[o].kind() for o in orders],
            )
            for platform, orders in platform_orders.items()
        }

    def refresh(self, order: int) -> None:
        state = self.states[order]
        index = self.indexes[state.node.platform]
        index.update(
            index.position[order],
            memory=state.memory,
            cpu=state.cpu,
            accelerator=state.accelerator,
            speed=state.speed(),
            share=state.share,
            fail_load=state.fail_load,
            used=bool(state.instances),
        )
        for (model, variant, join), rate in state.fail_rate.items():
            index.update_fail_rate(index.position[order], (model, variant), join, rate)

    def committed(self, order: int) -> None:
        state = self.states[order]
        index = self.indexes[state.node.platform]
        position = index.position[order]
        index.clear_fail_rates(position)
        self.refresh(order)
        for instance, mean, load, share in zip(
            state.instances, state.means, state.process_load, state.shares, strict=True
        ):
            index.update_instance(
                position, (instance.model, instance.variant), mean, load, instance.rate, share
            )

    def candidates(
        self, app: App, variants: Sequence[Profile], policy: str, queue_model: str
    ) -> list[tuple[int, PlatformIndex, np.ndarray, np.ndarray, np.ndarray]]:
        """Per variant: its position in `variants`, its platform's index, the utilisation after
        adding the app per node, and where a new server and a join pass the caps and the
        necessary latency conditions (identical empty nodes: only the first of each kind)."""
        bounded = policy not in KNAPSACKS
        out = []
        for j, profile in enumerate(variants):
            index = self.indexes.get(profile.platform)
            if index is None:
                continue
            found = index.options(
                model=app.model,
                variant=profile.variant,
                rate=app.rate,
                profile=profile,
                slo=app.plan_slo,
                speed_bound=bounded and queue_model == "fcfs-ps",
                load_bound=bounded and bool(queue_model),
                capped=policy != "knapsack-memory",
            )
            new, join = found.new, found.join
            if policy == "knapsack-memory":  # one server per app, as in the reference
                join = np.zeros_like(join)
            selector = index.selector(app.node_selector)
            if selector is not None:
                new, join = new & selector, join & selector
            out.append((j, index, found.utilisation, new, join))
        return out


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


def _candidates(
    app: App, model: ModelSpec, cluster: _Cluster, policy: str, queue_model: str
) -> Iterator[_Option]:
    """Options in the order the policy tries them (lazily for first-fit)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    variants = [p for v, p in model.profiles.items() if app.allows(v)]
    if policy == "knapsack":  # no co-location model, but only variants meeting the SLO alone
        variants = [p for p in variants if _alone(app, p) <= app.slo]
    found = cluster.candidates(app, variants, policy, queue_model)
    states = cluster.states
    if policy in ("first-fit", *KNAPSACKS):
        orders = [index.orders[new | join] for _, index, _, new, join in found]
        if not orders:
            return
        memory_only = policy == "knapsack-memory"
        for order in np.unique(np.concatenate(orders)).tolist():
            yield from _node_options(
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
        yield _Option(
            state=state,
            profile=profile,
            join=None if fresh[k] else state.where[(app.model, profile.variant)],
            utilisation=float(utilisation[k]),
            order=int(orders[k]),
        )


def _place_one(app: App, model: ModelSpec, cluster: _Cluster, policy: str, queue_model: str) -> str:
    """Place `app`; return '' on success, else why not."""
    knapsack = policy in KNAPSACKS
    check = {"knapsack": capacity_violation, "knapsack-memory": memory_violation}.get(
        policy, violation
    )
    tried = 0
    for option in _candidates(app, model, cluster, policy, queue_model):
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
    if not 0.0 <= headroom < 1.0:  # also refuses NaN
        raise ValueError(f"headroom must be at least 0 and below 1, got {headroom!r}")
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

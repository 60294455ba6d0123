"""The cluster's state while placing: per-node mutable state, the options a node offers an app,
and the per-platform indexes that mirror the states so candidate nodes are found in numpy.

The policies (policy.py) decide the order in which options are tried; this module only knows
what each node holds, what was learnt to fail there, and which options pass the cheap checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .index import PlatformIndex
from .inputs import App, Node, Profile
from .predict import Instance, cpu_work
from .queueing import erlang_c
from .sharing import core_share, core_shares, poisson_binomial

__all__ = ["Cluster", "NodeState", "Option", "node_options"]


class NodeState:
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
            self.share = core_share(poisson_binomial(self.process_load), units)
            self.shares = core_shares(self.process_load, units)
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
class Option:
    state: NodeState
    profile: Profile
    join: int | None
    utilisation: float
    order: int  # node position in the cluster


def node_options(
    app: App,
    variants: Sequence[Profile],
    state: NodeState,
    order: int,
    capped: bool = True,
    joins: bool = True,
) -> list[Option]:
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
                    Option(
                        state=state,
                        profile=profile,
                        join=choice,
                        utilisation=utilisation,
                        order=order,
                    )
                )
    # join before starting a new server (no extra memory), then the least added utilisation
    return sorted(out, key=lambda o: (o.join is None, o.utilisation))


class Cluster:
    """The node states plus what makes the policies fast: one PlatformIndex per platform,
    mirroring the states as arrays so the candidate nodes of an app are found in numpy."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.states = [NodeState(node) for node in nodes]
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
        self,
        app: App,
        variants: Sequence[Profile],
        *,
        queue_model: str,
        bounded: bool,
        memory_only: bool,
    ) -> list[tuple[int, PlatformIndex, np.ndarray, np.ndarray, np.ndarray]]:
        """Per variant: its position in `variants`, its platform's index, the utilisation after
        adding the app per node, and where a new server and a join pass the caps and the
        necessary latency conditions (identical empty nodes: only the first of each kind).
        `bounded`: apply the latency bounds; `memory_only`: no utilisation cap and one server
        per app (the knapsack-memory baseline)."""
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
                capped=not memory_only,
            )
            new, join = found.new, found.join
            if memory_only:  # one server per app, as in the reference
                join = np.zeros_like(join)
            selector = index.selector(app.node_selector)
            if selector is not None:
                new, join = new & selector, join & selector
            out.append((j, index, found.utilisation, new, join))
        return out

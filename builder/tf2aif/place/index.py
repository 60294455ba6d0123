"""Per-platform arrays of node state, so a policy finds the nodes that may take an app with a few
numpy operations instead of a Python loop over every node.

A `PlatformIndex` mirrors, for the nodes of one platform in cluster order, what the exact
precheck in policy.py reads (memory used, busy CPU cores, busy accelerator units) plus what the
queueing model has taught: the speeds a new server could get at best on the model's device
under the two fcfs-ps bounds (which bound its latency from below), the smallest load a new
server already failed to add because an app already there would miss its target, and per
(model, variant) the smallest rate a new server and a join failed to add whatever the
newcomer's own target. Per (model, variant) it also holds the current predicted mean, own
device load, rate and speed bound of the node's instance, so joins are found without visiting
the nodes that do not run it.

`options` returns, for one app and one variant, the positions where starting a new server, and
where joining the existing one, passes the memory and utilisation caps -- computed with the same
floating-point expressions as the precheck, so the utilisations are the exact ones -- and the
necessary latency conditions. The exact check (the queueing model) follows in the policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Candidates", "PlatformIndex"]


@dataclass(frozen=True)
class Candidates:
    utilisation: np.ndarray  # per node of the platform, after adding the app
    new: np.ndarray  # bool: a new server may fit
    join: np.ndarray  # bool: joining the existing server may fit


# latency bounds computed here and in the exact model may differ in the last bits; a bound
# only rules a node out when it exceeds the target by more than that
_ROUNDING = 1.0 - 1e-9


def _fcfs_ps_lower(rate, mean, m2, speed, share):
    """A lower bound of the fcfs-ps mean (queueing.shared_device, which is at least its GPS
    part): the geometric mean of the Pollaczek-Khinchine responses (queueing._pk_mean) at the
    priority bound's speed and at an upper bound `share` of the independent bound's speed;
    inf when either cannot keep up."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        high, low = mean / speed, mean / share
        busy_high, busy_low = rate * high, rate * low
        high = high + rate * (m2 / np.square(speed)) / (2.0 * (1.0 - busy_high))
        low = low + rate * (m2 / np.square(share)) / (2.0 * (1.0 - busy_low))
        bound = np.sqrt(high * low)
    return np.where((busy_high < 1.0) & (busy_low < 1.0) & (speed > 0.0), bound, math.inf)


def _at(values, where):
    """values[where], for a per-node array or a scalar shared by every node."""
    return values[where] if isinstance(values, np.ndarray) else values


class PlatformIndex:
    def __init__(self, orders: Sequence[int], nodes: Sequence, kinds: Sequence[tuple]) -> None:
        size = len(orders)
        self.orders = np.asarray(orders, dtype=np.intp)
        self.position = {order: i for i, order in enumerate(orders)}
        self.cores = np.array([n.cores for n in nodes], dtype=float)
        self.accelerated = np.array([n.accelerator is not None for n in nodes], dtype=bool)
        self.any_accelerated = bool(self.accelerated.any())
        self.all_accelerated = bool(self.accelerated.all())
        self.units = np.array(
            [n.accelerator.units if n.accelerator is not None else 1 for n in nodes], dtype=float
        )
        self.cap = np.array([n.cap for n in nodes], dtype=float)
        self.memory_total = np.array([n.memory_mb for n in nodes], dtype=float)
        self.memory = np.zeros(size)
        self.cpu = np.zeros(size)
        self.accelerator = np.zeros(size)
        self.speed = np.ones(size)
        self.share = np.ones(size)
        self.fail_load = np.full(size, math.inf)
        # Identical empty nodes are interchangeable: only the first empty one of each kind
        # (in cluster order) is a candidate. `eligible` is False for the others.
        self.eligible = np.ones(size, dtype=bool)
        self._empty_of_kind: dict[tuple, list[int]] = {}
        self._kind_of: list[tuple] = list(kinds)
        for i, kind in enumerate(kinds):
            waiting = self._empty_of_kind.setdefault(kind, [])
            if waiting:
                self.eligible[i] = False
            waiting.append(i)
        self._used = np.zeros(size, dtype=bool)
        # (model, variant) -> (mean of the node's instance, its own device load, its rate,
        # its share bound); inf mean = none
        self.joins: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        # (model, variant) -> smallest rate a new server, and a join, failed to add since the
        # node last changed whatever the newcomer's targets (see _NodeState.fail_rate)
        self.fail_rates: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._labels = [dict(n.labels) for n in nodes]
        self._selectors: dict[tuple, np.ndarray] = {}

    def update(
        self,
        position: int,
        *,
        memory: float,
        cpu: float,
        accelerator: float,
        speed: float,
        share: float,
        fail_load: float,
        used: bool,
    ) -> None:
        self.memory[position] = memory
        self.cpu[position] = cpu
        self.accelerator[position] = accelerator
        self.speed[position] = speed
        self.share[position] = share
        self.fail_load[position] = fail_load
        if used and not self._used[position]:
            self._used[position] = True
            waiting = self._empty_of_kind[self._kind_of[position]]
            waiting.remove(position)
            if waiting:
                self.eligible[waiting[0]] = True

    def update_instance(
        self,
        position: int,
        key: tuple[str, str],
        mean: float,
        load: float,
        rate: float,
        share: float,
    ) -> None:
        arrays = self.joins.get(key)
        if arrays is None:
            size = len(self.orders)
            arrays = self.joins[key] = (
                np.full(size, math.inf),
                np.full(size, math.inf),
                np.zeros(size),
                np.ones(size),
            )
        arrays[0][position] = mean
        arrays[1][position] = load
        arrays[2][position] = rate
        arrays[3][position] = share

    def update_fail_rate(self, position: int, key: tuple[str, str], join: bool, rate: float):
        arrays = self.fail_rates.get(key)
        if arrays is None:
            size = len(self.orders)
            arrays = self.fail_rates[key] = (np.full(size, math.inf), np.full(size, math.inf))
        arrays[int(join)][position] = rate

    def clear_fail_rates(self, position: int) -> None:
        for new, join in self.fail_rates.values():
            new[position] = join[position] = math.inf

    def selector(self, node_selector) -> np.ndarray | None:
        """Nodes whose labels match the app's node selector (None: every node)."""
        if not node_selector:
            return None
        key = tuple(sorted(node_selector.items()))
        mask = self._selectors.get(key)
        if mask is None:
            mask = np.array(
                [all(labels.get(k) == v for k, v in key) for labels in self._labels], dtype=bool
            )
            self._selectors[key] = mask
        return mask

    def options(
        self,
        *,
        model: str,
        variant: str,
        rate: float,
        profile,
        slo: float,
        speed_bound: bool,
        load_bound: bool,
        capped: bool = True,
    ) -> Candidates:
        """Where a new server of `profile`, or a join of the existing one, may take `rate`."""
        # the same expressions as _NodeState.precheck, elementwise
        cpu_plain = rate * (profile.service + profile.processing)
        if self.all_accelerated:
            added_cpu = rate * profile.processing
        elif self.any_accelerated:
            added_cpu = np.where(self.accelerated, rate * profile.processing, cpu_plain)
        else:
            added_cpu = cpu_plain
        utilisation = (self.cpu + added_cpu) / self.cores
        if self.any_accelerated:
            accelerator = (self.accelerator + rate * profile.service) / self.units
            accelerator = np.where(self.accelerated, accelerator, 0.0)
            utilisation = np.maximum(utilisation, accelerator)
        fits = utilisation <= self.cap if capped else np.ones(len(self.orders), dtype=bool)
        new = fits & ~(self.memory + profile.memory_mb > self.memory_total) & self.eligible
        # the device the model runs on: the accelerator, else the CPU (model + processing)
        if self.all_accelerated:
            device_time = profile.service
        elif self.any_accelerated:
            device_time = np.where(
                self.accelerated, profile.service, profile.service + profile.processing
            )
        else:
            device_time = profile.service + profile.processing
        if self.all_accelerated:
            device_m2 = profile.service_m2
        else:
            cpu_m2 = (
                profile.service_m2
                + 2.0 * profile.service * profile.processing
                + profile.processing_m2
            )
            device_m2 = (
                np.where(self.accelerated, profile.service_m2, cpu_m2)
                if self.any_accelerated
                else cpu_m2
            )
        # the pre/post-processing queue in front of an accelerator takes at least its mean
        before = (
            np.where(self.accelerated, profile.processing, 0.0) if self.any_accelerated else 0.0
        )
        if load_bound:
            new &= self.fail_load >= np.multiply(rate, device_time) * (1.0 + 1e-9)
        failing = self.fail_rates.get((model, variant))
        if failing is not None:
            new &= rate < failing[0]
        if speed_bound and (where := np.flatnonzero(new)).size:
            # a new server: the priority bound's speed is 1 - Erlang C of the others' load,
            # the independent bound's at most `share`
            low = _fcfs_ps_lower(
                rate,
                _at(device_time, where),
                _at(device_m2, where),
                self.speed[where],
                self.share[where],
            )
            new[where] = (low + _at(before, where)) * _ROUNDING <= slo
        arrays = self.joins.get((model, variant))
        if arrays is None:
            join = np.zeros(len(self.orders), dtype=bool)
        else:
            means, loads, rates, shares = arrays
            device_load = (
                rate * profile.service
                if self.all_accelerated
                else np.where(self.accelerated, rate * profile.service, cpu_plain)
                if self.any_accelerated
                else cpu_plain
            )
            join = fits & (means <= slo)
            if capped:
                join &= loads + device_load <= self.cap
            if failing is not None:
                join &= rate < failing[1]
            if speed_bound and (where := np.flatnonzero(join)).size:
                # the joined server at its new rate: the priority bound's speed is at most 1,
                # the independent bound's at most `shares`
                low = _fcfs_ps_lower(
                    rates[where] + rate,
                    _at(device_time, where),
                    _at(device_m2, where),
                    1.0,
                    shares[where],
                )
                join[where] = (low + _at(before, where)) * _ROUNDING <= slo
        return Candidates(utilisation=utilisation, new=new, join=join)

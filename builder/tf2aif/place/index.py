"""Per-platform arrays of node state, so a policy finds the nodes that may take an app with a few
numpy operations instead of a Python loop over every node.

A `PlatformIndex` mirrors, for the nodes of one platform in cluster order, what the exact
precheck in policy.py reads (memory used, busy CPU cores, busy accelerator units) plus two
necessary conditions learnt from the queueing model: the best speed a new server could get on
the model's device (which bounds its latency from below) and the smallest load a new server
already failed to add because an app already there would miss its target. Per (model, variant)
it also holds the current predicted mean and own device load of the node's instance, so joins
are found without visiting the nodes that do not run it.

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
        # (model, variant) -> (mean of the node's instance, its own device load); inf = none
        self.joins: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
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
        fail_load: float,
        used: bool,
    ) -> None:
        self.memory[position] = memory
        self.cpu[position] = cpu
        self.accelerator[position] = accelerator
        self.speed[position] = speed
        self.fail_load[position] = fail_load
        if used and not self._used[position]:
            self._used[position] = True
            waiting = self._empty_of_kind[self._kind_of[position]]
            waiting.remove(position)
            if waiting:
                self.eligible[waiting[0]] = True

    def update_instance(self, position: int, key: tuple[str, str], mean: float, load: float):
        arrays = self.joins.get(key)
        if arrays is None:
            size = len(self.orders)
            arrays = self.joins[key] = (np.full(size, math.inf), np.full(size, math.inf))
        arrays[0][position] = mean
        arrays[1][position] = load

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
        if speed_bound:  # a new server's mean is at least S / sqrt(speed)
            new &= self.speed >= np.square(device_time) / slo**2
        if load_bound:
            new &= self.fail_load >= np.multiply(rate, device_time) * (1.0 + 1e-9)
        arrays = self.joins.get((model, variant))
        if arrays is None:
            join = np.zeros(len(self.orders), dtype=bool)
        else:
            means, loads = arrays
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
        return Candidates(utilisation=utilisation, new=new, join=join)

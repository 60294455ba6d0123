"""The per-platform index only skips what cannot fit: placements equal those of a plain walk over
every node (the straightforward reference) on small random clusters, for every policy and mode."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from tf2aif.place import policy as policy_module
from tf2aif.place.cluster import Cluster, NodeState, Option, node_options
from tf2aif.place.inputs import Node
from tf2aif.place.policy import POLICIES, place, place_one
from tf2aif.place.predict import alone_response
from tf2aif.place.synthetic import catalogue, synthetic_apps, synthetic_cluster

MODELS = catalogue()


def reference_candidates(app, model, cluster, policy, queue_model):
    """Every node, every option, no index: first-fit in cluster order; best-fit and spread
    sorted by utilisation, then node order."""
    variants = [p for v, p in model.profiles.items() if app.allows(v)]
    if policy == "knapsack":
        variants = [p for p in variants if alone_response(app, p) <= app.slo]
    memory_only = policy == "knapsack-memory"
    options: list[Option] = []
    for order, state in enumerate(cluster.states):
        here = node_options(app, variants, state, order, not memory_only, not memory_only)
        if policy in ("first-fit", "knapsack", "knapsack-memory"):
            yield from here
        else:
            options.extend(here)
    sign = -1.0 if policy == "best-fit" else 1.0
    options.sort(key=lambda o: (sign * o.utilisation, o.order))
    yield from options


def clusters():
    for seed in range(4):
        rng = random.Random(seed)
        nodes = list(synthetic_cluster(rng.randint(3, 14), seed=seed))
        # some non-default caps and labels, so kinds differ within a platform
        for i in rng.sample(range(len(nodes)), k=len(nodes) // 3):
            nodes[i] = Node(
                name=nodes[i].name,
                platform=nodes[i].platform,
                memory_mb=nodes[i].memory_mb / 2,
                cores=nodes[i].cores,
                accelerator=nodes[i].accelerator,
                labels={"zone": rng.choice("ab")},
                cap=rng.choice((0.5, 0.8)),
            )
        apps = list(synthetic_apps(len(nodes) * rng.randint(8, 25), seed=seed, models=MODELS))
        for i in rng.sample(range(len(apps)), k=len(apps) // 10):
            apps[i] = replace(apps[i], node_selector={"zone": rng.choice("ab")})
        yield seed, nodes, apps


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("mode", ["online", "batch"])
def test_index_places_like_a_walk_over_every_node(policy, mode, monkeypatch):
    for seed, nodes, apps in clusters():
        fast = place(apps, MODELS, nodes, policy=policy, mode=mode)
        with monkeypatch.context() as patch:
            patch.setattr(policy_module, "candidates", reference_candidates)
            slow = place(apps, MODELS, nodes, policy=policy, mode=mode)
        assert fast.assignments == slow.assignments, (policy, mode, seed)
        assert [a for a, _ in fast.unplaced] == [a for a, _ in slow.unplaced]


def test_index_mirrors_the_node_states():
    nodes = synthetic_cluster(20, seed=5)
    apps = synthetic_apps(200, seed=5, models=MODELS)
    cluster = Cluster(nodes)
    for app in apps:
        place_one(app, MODELS[app.model], cluster, "first-fit", "fcfs-ps")
    for order, state in enumerate(cluster.states):
        index = cluster.indexes[state.node.platform]
        i = index.position[order]
        assert index.memory[i] == state.memory
        assert index.cpu[i] == state.cpu
        assert index.accelerator[i] == state.accelerator
        assert index.speed[i] == state.speed()
        assert index.share[i] == state.share
        assert index.fail_load[i] == state.fail_load
        for (model, variant), arrays in index.fail_rates.items():
            for join in (False, True):
                expected = state.fail_rate.get((model, variant, join), math.inf)
                assert arrays[join][i] == expected
        for (model, variant), k in state.where.items():
            means, loads, rates, shares = index.joins[(model, variant)]
            assert means[i] == state.means[k] and loads[i] == state.process_load[k]
            assert rates[i] == state.instances[k].rate and shares[i] == state.shares[k]


@pytest.mark.parametrize("policy", ["first-fit", "best-fit", "spread"])
def test_learnt_failures_and_bounds_only_skip_infeasible_options(policy, monkeypatch):
    """Without any shortcut (no index, no learnt failures, no lower bounds: the queueing model
    solved for every option that passes memory and caps) the placements are the same."""
    for seed, nodes, apps in clusters():
        fast = place(apps, MODELS, nodes, policy=policy)
        with monkeypatch.context() as patch:
            patch.setattr(policy_module, "candidates", reference_candidates)
            patch.setattr(NodeState, "dominated", lambda *args: False)
            patch.setattr(policy_module, "surely_too_slow", lambda *args: ())
            slow = place(apps, MODELS, nodes, policy=policy)
        assert fast.assignments == slow.assignments, (policy, seed)
        assert [a for a, _ in fast.unplaced] == [a for a, _ in slow.unplaced]

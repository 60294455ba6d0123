"""Simulated evaluation of the placement policies on heterogeneous clusters.

    python benchmarks/placement_eval.py [--sizes 10 100 1000] [--seeds 3] [--apps-per-node 30]
                                        [--sample 100] [--json OUT] [--plot docs/img/placement-hosted.png]
    python benchmarks/placement_eval.py --from-json RUN.json [RUN.json ...] [--plot PNG]

For each cluster size and seed: a synthetic cluster (tf2aif.place.synthetic: 40% cpu, 30% arm,
10% gpu, 10% agx, 10% alveo) is offered apps-per-node x nodes applications online (more than it
can hold). Each policy places what it can; a discrete-event simulation of every used node's
queues (tf2aif.place.judge, not the planner's formulas) then says which apps miss their mean SLO
(significantly: simulated mean minus its 95% half-width above the target). "knapsack-safe" is
the highest knapsack cap in (0.8, 0.6, 0.4, 0.2, 0.1) at which the simulation shows no violation
(none when switch overheads break targets at any cap); "knapsack-best" is the cap that hosts the
most apps meeting their SLO, even with others violating -- a baseline generous to the knapsack.
"knapsack-memory" is the reference's baseline (Liang et al., ACM TAAS 2023): first-fit by memory
only, one server per app, no utilisation cap. Clusters larger than --sample nodes are judged on a
random sample of --sample used nodes (violations are scaled).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path

from tf2aif.place.judge import judge
from tf2aif.place.policy import place
from tf2aif.place.synthetic import catalogue, synthetic_apps, synthetic_cluster

POLICIES = ("first-fit", "best-fit", "spread", "knapsack", "knapsack-memory")


def judged(nodes, placement, sample: int, seed: int):
    used = sorted(placement.instances)
    if len(used) > sample:
        used = sorted(random.Random(seed).sample(used, sample))
    subset = {name: placement.instances[name] for name in used}
    verdict = judge(nodes, subset, seed=seed)
    scale = len(placement.assignments) / max(verdict.apps, 1)
    return verdict, scale


KNAPSACK_CAPS = (0.8, 0.6, 0.4, 0.2, 0.1)


def knapsack_sweep(apps, models, nodes, sample: int, seed: int) -> list[dict]:
    """The knapsack at lower utilisation caps: placed, violating and hosted without violation."""
    out = []
    for cap in KNAPSACK_CAPS:
        capped = [replace(n, cap=cap) for n in nodes]
        placement = place(apps, models, capped, policy="knapsack")
        verdict, scale = judged(capped, placement, sample, seed)
        violating = round(verdict.violations * scale)
        out.append(
            {
                "cap": cap,
                "placed": len(placement.assignments),
                "violating": violating,
                "hosted_ok": len(placement.assignments) - violating,
            }
        )
    return out


def run(sizes, seeds, per_node, sample) -> list[dict]:
    models = catalogue()
    rows = []
    for size in sizes:
        for seed in range(seeds):
            nodes = synthetic_cluster(size, seed=seed)
            apps = synthetic_apps(per_node * size, seed=seed, models=models)
            for policy in POLICIES:
                t0 = time.process_time()
                placement = place(apps, models, nodes, policy=policy)
                cpu = time.process_time() - t0
                t0 = time.process_time()
                verdict, scale = judged(nodes, placement, sample, seed)
                judge_cpu = time.process_time() - t0
                violating = round(verdict.violations * scale)
                rows.append(
                    {
                        "nodes": size,
                        "seed": seed,
                        "policy": policy,
                        "offered": len(apps),
                        "placed": len(placement.assignments),
                        "violating": violating,
                        "strict": round(verdict.strict_violations * scale),
                        "hosted_ok": len(placement.assignments) - violating,
                        "worst_ratio": verdict.worst_ratio,
                        "place_cpu_s": cpu,
                        "judge_cpu_s": judge_cpu,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
            sweep = knapsack_sweep(apps, models, nodes, sample, seed)
            safe = next((k for k in sweep if k["violating"] == 0), None)
            best = max(sweep, key=lambda k: k["hosted_ok"])
            for name, pick in (("knapsack-safe", safe), ("knapsack-best", best)):
                row = {
                    "nodes": size,
                    "seed": seed,
                    "policy": name,
                    "offered": len(apps),
                    "placed": pick["placed"] if pick else 0,
                    "violating": pick["violating"] if pick else 0,
                    "hosted_ok": pick["hosted_ok"] if pick else 0,
                    "cap": pick["cap"] if pick else None,
                    "sweep": sweep,
                }
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "sweep"}), flush=True)
    return rows


def table(rows) -> str:
    lines = [
        "| nodes | policy | placed | violating (sim) | hosted without violation "
        "| x knapsack-best | x knapsack-memory |",
        "|---|---|---|---|---|---|---|",
    ]

    def ratio(sel, base) -> str:
        pairs = [(r["hosted_ok"], b) for r, b in zip(sel, base, strict=True)]
        ratios = [h / b for h, b in pairs if b]
        text = (
            f"{statistics.fmean(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            if ratios
            else "-"
        )
        if len(ratios) < len(pairs):
            text += f"; {len(pairs) - len(ratios)} run(s) over 0"
        return text

    for size in sorted({r["nodes"] for r in rows}):
        bases = {
            name: [r["hosted_ok"] for r in rows if r["nodes"] == size and r["policy"] == name]
            for name in ("knapsack-best", "knapsack-memory")
        }
        for policy in (*POLICIES, "knapsack-safe", "knapsack-best"):
            sel = [r for r in rows if r["nodes"] == size and r["policy"] == policy]
            if not sel:
                continue
            caps = [str(r["cap"]) for r in sel if "cap" in r]
            extra = f" (cap {', '.join(caps)})" if caps else ""
            placed = statistics.fmean(r["placed"] for r in sel)
            violating = statistics.fmean(r["violating"] for r in sel)
            hosted = statistics.fmean(r["hosted_ok"] for r in sel)
            lines.append(
                f"| {size} | {policy}{extra} | {placed:.0f} | {violating:.1f} | {hosted:.0f} "
                f"| {ratio(sel, bases['knapsack-best'])} | {ratio(sel, bases['knapsack-memory'])} |"
            )
    return "\n".join(lines)


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["nodes"] for r in rows})
    policies = (*POLICIES, "knapsack-best")
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(policies)

    def per_node(key: str, policy: str) -> list[float]:
        """Mean of `key` per node, for each cluster size, over the seeds."""
        return [
            statistics.fmean(
                r[key] / r["nodes"] for r in rows if r["nodes"] == s and r["policy"] == policy
            )
            for s in sizes
        ]

    for i, policy in enumerate(policies):
        ok, bad = per_node("hosted_ok", policy), per_node("violating", policy)
        xs = [j + (i - (len(policies) - 1) / 2) * width for j in range(len(sizes))]
        ax.bar(xs, ok, width, label=policy)
        ax.bar(xs, bad, width, bottom=ok, color="none", edgecolor="red", hatch="//")
    ax.set_xticks(range(len(sizes)), [f"{s} nodes" for s in sizes])
    ax.set_ylabel("apps hosted per node (hatched: violating in simulation)")
    ax.set_title("Apps hosted without SLO violation (discrete-event simulation)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--apps-per-node", type=int, default=30)
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        help="only print the table/plot of earlier runs (their rows together)",
    )
    args = parser.parse_args()
    if args.from_json:
        rows = [row for path in args.from_json for row in json.loads(path.read_text())]
    else:
        rows = run(args.sizes, args.seeds, args.apps_per_node, args.sample)
    if args.json and not args.from_json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(table(rows))
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()

"""How long placement takes: apps x nodes on the synthetic heterogeneous cluster.

    python benchmarks/placement_speed.py [--scales 100:1000 300:3000 1000:10000] [--policies first-fit knapsack]

Prints CPU seconds of the calling process (time.process_time, robust to other load on a shared
machine) and wall seconds per (nodes, apps, policy).
"""

from __future__ import annotations

import argparse
import time

from tf2aif.place.policy import place
from tf2aif.place.synthetic import catalogue, synthetic_apps, synthetic_cluster


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", nargs="+", default=["100:1000", "300:3000", "1000:10000"])
    parser.add_argument("--policies", nargs="+", default=["first-fit", "knapsack"])
    args = parser.parse_args()
    models = catalogue()
    print("| nodes | apps | policy | placed | CPU s | wall s |")
    print("|---|---|---|---|---|---|")
    for scale in args.scales:
        size, count = (int(x) for x in scale.split(":"))
        nodes = synthetic_cluster(size, seed=1)
        apps = synthetic_apps(count, seed=1, models=models)
        for policy in args.policies:
            wall, cpu = time.perf_counter(), time.process_time()
            placement = place(apps, models, nodes, policy=policy)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(
                f"| {size} | {count} | {policy} | {len(placement.assignments)} | {cpu:.2f} | {wall:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

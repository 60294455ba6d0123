"""`tf2aif place`: choose node and variant per application with queueing models."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tf2aif.cli.argtypes import fraction

__all__ = ["add_parsers"]


DEFAULT_HEADROOM = 0.1  # as tf2aif.place.policy.DEFAULT_HEADROOM (not imported: numpy)


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "place",
        help="place applications on nodes and variants so every latency SLO holds",
        description=(
            "Pick, for every application, a node and a model variant (runtime x precision) such "
            "that the queueing models predict every app on that node meets its mean (and p99) "
            "latency target, within memory and utilisation caps. Writes assignment.json and "
            "Kubernetes manifests (one Deployment per server instance, one Service per app)."
        ),
    )
    p.add_argument(
        "--cluster", required=True, type=Path, help="cluster file (schema/cluster.schema.json)"
    )
    p.add_argument(
        "--apps", required=True, type=Path, help="applications file (schema/apps.schema.json)"
    )
    p.add_argument(
        "--policy",
        default="first-fit",
        choices=("first-fit", "best-fit", "spread", "knapsack", "knapsack-memory"),
        help="knapsack packs by memory and utilisation caps only (baseline, no latency model); "
        "knapsack-memory by memory only (the reference paper's baseline)",
    )
    p.add_argument(
        "--mode",
        default="online",
        choices=("online", "batch"),
        help="online: in file order, never moving an app; batch: heaviest first",
    )
    p.add_argument(
        "--model",
        default="fcfs-ps",
        choices=("fcfs-ps", "ps"),
        help="time-shared device model (see docs/placement.md)",
    )
    p.add_argument(
        "--headroom",
        type=fraction(below_one=True),
        default=DEFAULT_HEADROOM,
        help="plan for (1 - HEADROOM) x every latency target, a margin for model error; "
        f"0 <= HEADROOM < 1 (default {DEFAULT_HEADROOM})",
    )
    p.add_argument("--out", type=Path, help="write assignment.json and k8s/*.yaml here")
    p.add_argument(
        "--json", action="store_true", help="print the assignment JSON instead of a table"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Place, then print: with --json stdout holds the assignment JSON and nothing else,
    every message (unplaced apps, files written) goes to stderr."""
    from tf2aif.cli.console import console
    from tf2aif.errors import EXIT_INVALID, EXIT_OK
    from tf2aif.place.inputs import load_apps, load_cluster
    from tf2aif.place.k8s import manifests, stale_files, write_manifests
    from tf2aif.place.policy import place

    nodes = load_cluster(args.cluster)
    apps, models = load_apps(args.apps)
    placement = place(
        apps,
        models,
        nodes,
        policy=args.policy,
        mode=args.mode,
        queue_model=args.model,
        headroom=args.headroom,
    )
    data = placement.to_dict()
    files = manifests(placement, {n.name: n for n in nodes}) if args.out else {}
    stale = stale_files(args.out / "k8s", files) if args.out else []  # refuses before writing
    messages = console(stderr=True)
    if args.json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        console().print(_table(placement))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "assignment.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        written = write_manifests(args.out / "k8s", files)
        messages.print(
            f"wrote {args.out / 'assignment.json'} and {len(written)} manifest file(s) in"
            f" {args.out / 'k8s'}"
            + (f"; removed {len(stale)} of an earlier placement" if stale else "")
        )
    for app, why in placement.unplaced:
        messages.print(f"[red]not placed[/red] {app}: {why}")
    return EXIT_INVALID if placement.unplaced else EXIT_OK


def _table(placement):
    from rich.table import Table

    # names fold onto more lines rather than shrink to stubs; figures never wrap
    table = Table(
        title=f"placement ({placement.policy}, {placement.mode}; predicted, per instance)",
        title_justify="left",
    )
    for column in ("app", "node", "variant", "req/s", "mean ms", "p99 ms", "cpu util", "acc util"):
        figure = column.endswith(("ms", "util", "/s"))
        table.add_column(
            column,
            justify="right" if figure else "left",
            overflow="fold",
            no_wrap=figure,
            min_width=None if figure else 6,
        )
    for a in placement.assignments:
        table.add_row(
            a.app,
            a.node,
            a.variant,
            f"{a.rate:g}",
            f"{a.mean * 1e3:.2f}",
            f"{a.p99 * 1e3:.2f}",
            f"{a.cpu_utilisation:.2f}",
            f"{a.accelerator_utilisation:.2f}" if a.accelerator_utilisation else "-",
        )
    return table

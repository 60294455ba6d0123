"""Registry cache: how much a build that starts with an empty BuildKit cache gains from
`tf2aif bake --cache registry` (cache-from/cache-to per target, mode=max).

    python benchmarks/registry_cache.py --vendor-map .tf2aif/vendor-map.yaml \
        [--only 'cpu/tflite/*'] [--registry 127.0.0.1:5000/bench]

Three builds of the demo, each after `docker image prune --all --force` and `docker buildx prune
--all --force` (on the containerd image store, build cache records that back local images
survive a build cache prune and still hit), so each starts the way a fresh CI runner does: no
images, no layers, no pip cache mounts; only the registry (vendor stand-ins, the cache) remains.
  1. no cache at all                               -> the cost of a cold build
  2. --cache registry, the registry cache is empty  -> cold build plus exporting the cache
  3. --cache registry again                         -> what the next runner pays
Prints one markdown table: seconds, the ratio to (1) measured side by side in this run, and the
RUN steps each build executed or found cached (from buildx's plain progress log).
It removes every local image and the builder's whole cache: run it on a machine where that is
fine (images pushed to a registry come back from there). Logs go to --logs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    args = _parser().parse_args()
    registry = f"{args.registry}/{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="tf2aif-cache-bench-") as tmp:
        root = _project(Path(tmp), Path(args.model), registry)
        common = ["--vendor-map", args.vendor_map, "--push", "--source-date-epoch", "off"]
        common += [x for pattern in args.only for x in ("--only", pattern)]
        runs = [
            ("no cache", common),
            ("registry cache, empty (exports it)", [*common, "--cache", "registry"]),
            ("registry cache, filled by the run above", [*common, "--cache", "registry"]),
        ]
        timed = [_timed_build(root, label, argv, Path(args.logs)) for label, argv in runs]
    print(f"\nregistry {registry}, only {args.only or 'all variants'}\n")
    print(
        "| build (BuildKit cache pruned before each) | seconds | vs no cache | RUN steps executed / cached | cache imports |"
    )
    print("|---|---|---|---|---|")
    first = timed[0][0]
    for (label, _), (seconds, steps) in zip(runs, timed, strict=True):
        ran, cached, imported = steps
        print(
            f"| {label} | {seconds:.0f} | {first / seconds:.2f}x | {ran} / {cached} | {imported} |"
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vendor-map", required=True, help="stand-ins for the vendor images")
    parser.add_argument("--model", default=str(REPO / "models" / "digits"))
    parser.add_argument("--registry", default="127.0.0.1:5000/tf2aif-bench")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN")
    parser.add_argument("--logs", default="registry-cache-logs", help="folder for the bake logs")
    return parser


def _project(tmp: Path, model: Path, registry: str) -> Path:
    """The demo manifest, plug-ins and model, publishing to `registry`."""
    root = tmp / "demo"
    root.mkdir()
    lines = (REPO / "tf2aif.yaml").read_text().splitlines(keepends=True)
    text = "".join(f"registry: {registry}\n" if x.startswith("registry:") else x for x in lines)
    (root / "tf2aif.yaml").write_text(text)
    shutil.copytree(REPO / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(model, root / "models" / "digits")
    return root


def _steps(log: str) -> tuple[int, int, int]:
    """(RUN steps executed, RUN steps cached, cache manifests imported) in a plain-progress log
    (each bake phase, conversions then servers, numbers its steps from #1)."""
    ran = cached = 0
    for phase in re.split(r"(?m)^#1 \[internal\] load local bake definitions", log)[1:]:
        steps = set(re.findall(r"(?m)^#(\d+) \[[^\]]*\] RUN ", phase))
        hits = {step for step in steps if re.search(rf"(?m)^#{step} CACHED$", phase)}
        ran, cached = ran + len(steps - hits), cached + len(hits)
    imported = len(re.findall(r"(?m)^#\d+ (?:\[[^\]]*\] )?importing cache manifest from ", log))
    return ran, cached, imported


def _timed_build(
    root: Path, label: str, argv: list[str], logs: Path
) -> tuple[float, tuple[int, int, int]]:
    for prune in (["image", "prune"], ["buildx", "prune"]):
        subprocess.run(["docker", *prune, "--all", "--force"], check=True, capture_output=True)
    print(f"{label}: building ...", file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO / "builder")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tf2aif", "bake", str(root / "tf2aif.yaml"), *argv],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{label}: bake failed\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    print(f"{label}: {seconds:.0f} s", file=sys.stderr, flush=True)
    logs.mkdir(parents=True, exist_ok=True)
    (logs / (re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") + ".log")).write_text(proc.stdout)
    return seconds, _steps(proc.stdout)


if __name__ == "__main__":
    main()

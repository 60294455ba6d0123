"""Registry cache: how much a build that starts with an empty BuildKit cache gains from
`tf2aif bake --cache registry` (cache-from/cache-to per target, mode=max).

    python benchmarks/registry_cache.py --vendor-map .tf2aif/vendor-map.yaml \
        [--only 'cpu/tflite/*'] [--registry 127.0.0.1:5000/bench]

Three builds of the demo, each after `docker buildx prune --all --force`, so each starts the way
a fresh CI runner does (no layers, no pip cache mounts):
  1. no cache at all                               -> the cost of a cold build
  2. --cache registry, the registry cache is empty  -> cold build plus exporting the cache
  3. --cache registry again                         -> what the next runner pays
Prints one markdown table; the ratio is (1) / (3), measured side by side in this run.
It prunes the builder's whole cache: run it on a machine whose cache you can lose.
"""

from __future__ import annotations

import argparse
import os
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
        seconds = [_timed_build(root, label, argv) for label, argv in runs]
    print(f"\nregistry {registry}, only {args.only or 'all variants'}\n")
    print("| build (BuildKit cache pruned before each) | seconds | vs no cache |")
    print("|---|---|---|")
    for (label, _), s in zip(runs, seconds, strict=True):
        print(f"| {label} | {s:.0f} | {seconds[0] / s:.2f}x |")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vendor-map", required=True, help="stand-ins for the vendor images")
    parser.add_argument("--model", default=str(REPO / "models" / "digits"))
    parser.add_argument("--registry", default="127.0.0.1:5000/tf2aif-bench")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN")
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


def _timed_build(root: Path, label: str, argv: list[str]) -> float:
    subprocess.run(
        ["docker", "buildx", "prune", "--all", "--force"], check=True, capture_output=True
    )
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
    return seconds


if __name__ == "__main__":
    main()

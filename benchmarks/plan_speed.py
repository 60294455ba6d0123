"""Time validate + resolve + plan + emit for a synthetic matrix of many variants.

    python benchmarks/plan_speed.py [--platforms 60] [--repeat 5]

Test recipes add N platforms (amd64/arm64 alternately) served by tflite, openvino and
onnxruntime at three precisions, so the matrix has N x 3 x 3 variants. Prints the median of
the repeats per stage and the total.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "builder"), str(ROOT / "tests")]

from tf2aif.pipeline.bake import bake_json  # noqa: E402
from tf2aif.pipeline.manifest import load_manifest  # noqa: E402
from tf2aif.pipeline.plan import make_plan  # noqa: E402
from tf2aif.pipeline.recipes import load_recipes  # noqa: E402
from tf2aif.pipeline.resolve import resolve  # noqa: E402

from projects import write_project  # noqa: E402

RUNTIMES = {"tflite": "convert-tf", "openvino": "convert-tf", "onnxruntime": "convert-tf"}


def write_recipes(folder: Path, count: int, distinct: bool) -> list[str]:
    names = [f"edge{i:03d}" for i in range(count)]
    lines = ["platforms:"] + [
        f"  {n}: {{arch: {'amd64' if i % 2 == 0 else 'arm64'}}}" for i, n in enumerate(names)
    ]
    (folder / "platforms.yaml").write_text("\n".join(lines) + "\n")
    for runtime, converter in RUNTIMES.items():
        recipe = folder / f"{runtime}-edge"
        recipe.mkdir()
        vendor = "registry.example.com/{n}/python:3.11" if distinct else "python:3.11-slim-bookworm"
        platforms = "\n".join(
            f"  {n}: {{base: serve-{runtime}, vendor: '{vendor.format(n=n)}'}}" for n in names
        )
        recipe.joinpath("recipe.yaml").write_text(
            f"runtime: {runtime}-edge\nprecisions: [fp32, fp16, int8]\n"
            f"converter: {{backend: {runtime}, base: {converter}, vendor: 'tensorflow/tensorflow:2.21.0'}}\n"
            f"platforms:\n{platforms}\n"
        )
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platforms", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--distinct-images",
        action="store_true",
        help="a runtime base per platform: one image per variant",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "recipes").mkdir()
        names = write_recipes(tmp_path / "recipes", args.platforms, args.distinct_images)
        runtimes = ", ".join(f"{r}-edge" for r in RUNTIMES)
        manifest = write_project(
            tmp_path / "project",
            f"""\
version: 1
name: synthetic
model: {{path: models/m}}
calibration: {{module: app/calibration.py}}
targets:
  platforms: [{", ".join(names)}]
  runtimes: [{runtimes}]
  precisions: [fp32, fp16, int8]
registry: registry.example.com/bench
""",
        )
        env = {"TF2AIF_RECIPE_PATH": str(tmp_path / "recipes")}
        timings: dict[str, list[float]] = {
            k: [] for k in ("recipes", "validate", "resolve", "plan", "emit", "total")
        }
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            recipes = load_recipes(env=env)
            t1 = time.perf_counter()
            loaded, _ = load_manifest(manifest)
            t2 = time.perf_counter()
            resolution = resolve(loaded, recipes)
            t3 = time.perf_counter()
            plan = make_plan(resolution, env={})
            t4 = time.perf_counter()
            text = bake_json(plan)
            t5 = time.perf_counter()
            for key, value in zip(
                timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0), strict=True
            ):
                timings[key].append(value)
    print(
        f"variants: {len(plan.variants)}, images: {len(plan.serves)}, conversions: {len(plan.converts)}, bake file: {len(text) / 1e6:.1f} MB"
    )
    for key, values in timings.items():
        print(
            f"{key:>9}: median {statistics.median(values) * 1000:8.1f} ms   (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f}, n={len(values)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The cpu conversion matrix the conversion benchmarks run, read from the shipped recipes.

Which precisions a runtime has and which converter backend builds it live in recipes/; the
benchmarks only choose the runtimes and the order of their table's rows.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "builder"))

from tf2aif.pipeline.recipes import Recipe, load_recipes  # noqa: E402

CPU_RUNTIMES = ("tf", "tflite", "openvino", "onnxruntime")  # the row order of the tables


def _recipe(runtime: str, platform: str) -> Recipe:
    recipe = load_recipes(env={}).serving(runtime, platform)
    if recipe is None:
        raise SystemExit(f"no shipped recipe serves {runtime} on {platform}")
    return recipe


def variants(
    runtimes: tuple[str, ...] = CPU_RUNTIMES, platform: str = "cpu"
) -> tuple[tuple[str, str, str], ...]:
    """(runtime, converter backend, precision) for every precision the recipes give."""
    return tuple(
        (runtime, recipe.backend, precision)
        for runtime in runtimes
        for recipe in (_recipe(runtime, platform),)
        for precision in recipe.precisions
    )


def recipe_options(runtime: str, platform: str = "cpu") -> dict[str, Any]:
    """The converter options the recipe serving `runtime` on `platform` sets by default."""
    return dict(_recipe(runtime, platform).options)


def backend(runtime: str, platform: str = "cpu") -> str:
    """The converter backend of the recipe serving `runtime` on `platform`."""
    return _recipe(runtime, platform).backend

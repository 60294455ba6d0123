"""The numbers a report shows, picked from bench result runs (pure: dicts in, rows out)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Speedup",
    "by_model",
    "isolated_runs",
    "runtimes_of",
    "speedups",
    "sweep_runs",
    "variant_order",
]

Run = Mapping[str, Any]

_RUNTIME_ORDER = ("tf", "tflite", "openvino", "onnxruntime", "tensorrt", "vitis-ai")
_PRECISION_ORDER = ("fp32", "fp16", "int8")


def by_model(results: Iterable[Mapping[str, Any]]) -> dict[str, list[Run]]:
    models: dict[str, list[Run]] = {}
    for result in results:
        for run in result["runs"]:
            models.setdefault(run["model"], []).append(run)
    return models


def runtimes_of(results: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The runtimes the results hold runs of, in report order (runs without one are skipped)."""
    found = {run["runtime"] for result in results for run in result["runs"] if run.get("runtime")}
    return tuple(
        sorted(found, key=lambda r: (_RUNTIME_ORDER.index(r) if r in _RUNTIME_ORDER else 99, r))
    )


def _rank(run: Run) -> tuple:
    runtime, precision = run.get("runtime"), run.get("precision")
    return (
        run.get("platform") or "",
        _RUNTIME_ORDER.index(runtime) if runtime in _RUNTIME_ORDER else len(_RUNTIME_ORDER),
        _PRECISION_ORDER.index(precision) if precision in _PRECISION_ORDER else 9,
        run["variant"],
    )


def variant_order(runs: Iterable[Run]) -> list[str]:
    """Variants, baseline runtime first, then the others in a fixed runtime/precision order."""
    seen: dict[str, Run] = {}
    for run in runs:
        seen.setdefault(run["variant"], run)
    return [run["variant"] for run in sorted(seen.values(), key=_rank)]


def isolated_runs(runs: Sequence[Run]) -> dict[str, Run]:
    """variant -> its closed-loop concurrency-1 run (the last one, if measured twice)."""
    return {r["variant"]: r for r in runs if r["mode"] == "closed" and r["concurrency"] == 1}


def sweep_runs(results: Iterable[Mapping[str, Any]], model: str) -> dict[str, list[Run]]:
    """variant -> its closed-loop runs by rising concurrency (only variants with two or more).

    A curve never mixes result files (runs measured at different times, under different machine
    load): each variant takes its longest sweep from one file, the later file on a tie.
    """
    best: dict[str, list[Run]] = {}
    for result in results:
        curves: dict[str, dict[int, Run]] = {}
        for run in result["runs"]:
            if run["model"] == model and run["mode"] == "closed":
                curves.setdefault(run["variant"], {})[run["concurrency"]] = run
        for variant, levels in curves.items():
            if len(levels) > 1 and len(levels) >= len(best.get(variant, ())):
                best[variant] = [levels[k] for k in sorted(levels)]
    return best


@dataclass(frozen=True, kw_only=True)
class Speedup:
    variant: str
    baseline: str
    p50: float  # baseline p50 / variant p50 (> 1: faster)
    mean: float
    p99: float
    throughput: float  # variant throughput / baseline throughput
    p50_ratio: float  # variant p50 / baseline p50 (< 1: faster); what "0.5x native" means


def speedups(isolated: Mapping[str, Run], baseline_runtime: str) -> list[Speedup]:
    """Each variant against the baseline runtime's run on the same platform (concurrency 1)."""
    baselines = {
        r.get("platform"): r for r in isolated.values() if r.get("runtime") == baseline_runtime
    }
    rows = []
    for variant in variant_order(isolated.values()):
        run = isolated[variant]
        base = baselines.get(run.get("platform"))
        if base is None or not _measured(run) or not _measured(base):
            continue
        lat, ref = run["latency_ms"], base["latency_ms"]
        rows.append(
            Speedup(
                variant=variant,
                baseline=base["variant"],
                p50=ref["p50"] / lat["p50"],
                mean=ref["mean"] / lat["mean"],
                p99=ref["p99"] / lat["p99"],
                throughput=run["throughput_rps"] / base["throughput_rps"],
                p50_ratio=lat["p50"] / ref["p50"],
            )
        )
    return rows


def _measured(run: Run) -> bool:
    return bool(run["latency_ms"].get("p50")) and run["throughput_rps"] > 0

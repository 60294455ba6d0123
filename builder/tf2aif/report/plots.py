"""Matplotlib (Agg) figures of a report; each function writes one PNG and returns its path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

from tf2aif.report.tables import Speedup  # noqa: E402

__all__ = ["generation_plot", "latency_box_plot", "speedup_plot", "sweep_plot"]

DPI = 110


def _log_axis(ax, axis: str, values: Sequence[float]) -> bool:
    """Log scale with plain tick labels (0.5, 2, 30) when values span more than 20x."""
    finite = [v for v in values if v and v > 0 and np.isfinite(v)]
    if not finite or max(finite) / min(finite) <= 20:
        return False
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
    target.set_major_formatter(plain)
    target.set_minor_formatter(ticker.NullFormatter())
    return True


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def generation_plot(rows: Sequence[tuple[str, Mapping[str, float]]], path: Path) -> Path:
    """Horizontal bars per image, stacked by build stage (convert, serve, ...)."""
    stages = sorted({s for _, d in rows for s in d}, key=lambda s: (s != "convert", s))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.6))
    left = np.zeros(len(rows))
    labels = [label for label, _ in rows]
    for stage in stages:
        values = np.array([d.get(stage, 0.0) for _, d in rows])
        ax.barh(labels, values, left=left, label=stage)
        left += values
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:.1f} s", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("image generation time (s)")
    ax.set_title("Image generation time per image, by build stage")
    ax.set_xlim(0, max(left.max(initial=1) * 1.15, 1))
    ax.legend(loc="lower right")
    return _save(fig, path)


def latency_box_plot(samples: Mapping[str, Sequence[float]], model: str, path: Path) -> Path:
    """Latency distribution per variant at concurrency 1 (whiskers 1st..99th percentile)."""
    names = list(samples)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names) + 2), 4.2))
    ax.boxplot([samples[n] for n in names], whis=(1, 99), showfliers=False, showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    values = [v for n in names for v in samples[n]]
    log = _log_axis(ax, "y", [np.percentile(values, 1), np.percentile(values, 99)])
    ax.set_ylabel("latency per request (ms" + (", log scale)" if log else ")"))
    ax.set_title(
        f"{model}: latency at concurrency 1\nbox p25-p75, line p50, ▲ mean, whiskers p1-p99"
    )
    ax.grid(axis="y", which="both", alpha=0.3)
    return _save(fig, path)


def speedup_plot(rows: Sequence[Speedup], model: str, path: Path) -> Path:
    """Grouped bars: p50, mean and p99 latency speedup and throughput ratio vs the baseline."""
    metrics = (("p50", "p50 latency"), ("mean", "mean latency"), ("p99", "p99 latency"),
               ("throughput", "throughput"))  # fmt: skip
    names = [r.variant for r in rows]
    x = np.arange(len(names))
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(max(6, 1.0 * len(names) + 2), 4.4))
    for i, (key, label) in enumerate(metrics):
        values = [getattr(r, key) for r in rows]
        bars = ax.bar(x + (i - 1.5) * width, values, width, label=label)
        ax.bar_label(bars, [f"{v:.2g}" for v in values], fontsize=6, padding=1)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(x, names, rotation=30, ha="right")
    every = [getattr(r, k) for r in rows for k, _ in metrics]
    log = _log_axis(ax, "y", [*every, 1.0])
    ax.set_ylabel("speedup vs native TF (x" + (", log scale)" if log else ")"))
    baseline = rows[0].baseline if rows else "baseline"
    ax.set_title(f"{model}: speedup over {baseline} at concurrency 1 (>1 is better)")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def sweep_plot(curves: Mapping[str, Sequence[Mapping[str, Any]]], model: str, path: Path) -> Path:
    """Latency-throughput curves: one line per variant, one point per concurrency level.

    p99 lines are drawn too while they stay readable (up to four variants).
    """
    fig, ax = plt.subplots(figsize=(8, 5))
    with_p99 = len(curves) <= 4
    markers = "osD^v<>ph*"
    for i, (variant, runs) in enumerate(curves.items()):
        x = [r["throughput_rps"] for r in runs]
        y = [r["latency_ms"]["p50"] for r in runs]
        (line,) = ax.plot(x, y, marker=markers[i % len(markers)], label=variant)
        if with_p99:
            p99 = [r["latency_ms"]["p99"] for r in runs]
            ax.plot(x, p99, linestyle=":", color=line.get_color())
        for r, xi, yi in zip(runs, x, y, strict=True):
            ax.annotate(str(r["concurrency"]), (xi, yi), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
    every = [r for runs in curves.values() for r in runs]
    xlog = _log_axis(ax, "x", [r["throughput_rps"] for r in every])
    shown = ("p50", "p99") if with_p99 else ("p50",)
    ylog = _log_axis(ax, "y", [r["latency_ms"][k] or 0 for r in every for k in shown])
    ax.set_xlabel("throughput (requests/s" + (", log scale)" if xlog else ")"))
    what = "p50 solid, p99 dotted" if with_p99 else "p50"
    ax.set_ylabel("latency (ms" + (", log scale" if ylog else "") + f"): {what}")
    ax.set_title(f"{model}: latency vs throughput, closed loop (labels: concurrency)")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)

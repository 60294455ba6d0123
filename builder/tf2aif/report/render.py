"""Assemble a report: pick the numbers (tables.py), draw them (plots.py), write Markdown + HTML."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tf2aif.report import plots
from tf2aif.report.document import Block, Heading, Image, Paragraph, Table, to_html, to_markdown
from tf2aif.report.tables import by_model, isolated_runs, speedups, sweep_runs, variant_order

__all__ = ["render_report"]


def render_report(
    results: Sequence[Mapping[str, Any]],
    *,
    out: Path,
    record: Path | None = None,
    baseline: str = "tf",
    title: str = "tf2aif benchmark",
    img_prefix: str = "",
) -> list[Path]:
    """Write report.md, report.html and the PNGs they show into `out`; return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    blocks: list[Block] = [Heading(text=title, level=1), *_setup(results)]
    images: list[Path] = []
    if record is not None:
        blocks += _generation(record, out, images)
    for model, runs in by_model(results).items():
        curves = sweep_runs(results, model)
        blocks += _model_section(model, runs, curves, baseline, out, images)
    markdown = out / "report.md"
    markdown.write_text(to_markdown(blocks, img_prefix=img_prefix))
    page = out / "report.html"
    page.write_text(to_html(blocks, title=title))
    return [markdown, page, *images]


def _setup(results) -> list[Block]:
    first = results[0]
    host, settings = first["host"], first["settings"]
    return [
        Paragraph(
            text=f"Client host: {host.get('cpu_model') or host['machine']}, {host['cpus']} CPUs, "
            f"{host['system']}. Warm-up {settings['warmup_s']:g} s, windows of "
            f"{settings['window_s']:g} s until {settings['stable_windows']} agree within "
            f"{settings['tolerance']:.0%} or {settings['max_duration_s']:g} s. Results from "
            + ", ".join(r["created"] for r in results)
            + "."
        )
    ]


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}" if value < 10 else f"{value:.1f}"


def _model_section(model, runs, curves, baseline, out: Path, images: list[Path]) -> list[Block]:
    blocks: list[Block] = [Heading(text=f"Model {model}")]
    isolated = isolated_runs(runs)
    if isolated:
        blocks += _isolated(model, isolated, baseline, out, images)
    if curves:
        blocks += _sweep(model, curves, out, images)
    open_runs = [r for r in runs if r["mode"] == "open"]
    if open_runs:
        blocks += _open(open_runs)
    return blocks


def _isolated(model, isolated, baseline, out, images) -> list[Block]:
    order = variant_order(isolated.values())
    ratios = {s.variant: s for s in speedups(isolated, baseline)}
    header = ("variant", "p50 ms", "p90 ms", "p99 ms", "mean ms", "max ms", "req/s", "errors",
              f"p50 / {baseline} p50", "server stages (mean ms)")  # fmt: skip
    rows = []
    for variant in order:
        run = isolated[variant]
        lat = run["latency_ms"]
        ratio = ratios.get(variant)
        stages = run.get("server_stages") or {}
        rows.append((
            variant, *(_ms(lat[k]) for k in ("p50", "p90", "p99", "mean", "max")),
            f"{run['throughput_rps']:.1f}", str(sum(run["errors"].values())),
            f"{ratio.p50_ratio:.2f}" if ratio else "-",
            ", ".join(f"{k} {_ms(v['mean_ms'])}" for k, v in stages.items() if v["count"]),
        ))  # fmt: skip
    blocks: list[Block] = [
        Heading(text=f"{model}: one request at a time (concurrency 1)", level=3),
        Table(header=header, rows=tuple(rows)),
    ]
    samples = {v: isolated[v]["samples_ms"] for v in order if isolated[v]["samples_ms"]}
    if samples:
        path = plots.latency_box_plot(samples, model, out / f"{_slug(model)}-latency-c1.png")
        images.append(path)
        blocks.append(Image(path=path.name, alt=f"{model} latency distribution at concurrency 1"))
    if ratios:
        path = plots.speedup_plot(list(ratios.values()), model, out / f"{_slug(model)}-speedup.png")
        images.append(path)
        blocks.append(Image(path=path.name, alt=f"{model} speedup over {baseline}"))
    return blocks


def _sweep(model, curves, out, images) -> list[Block]:
    rows = []
    for variant in variant_order(r for runs in curves.values() for r in runs):
        for run in curves[variant]:
            lat = run["latency_ms"]
            rows.append((variant, str(run["concurrency"]), f"{run['throughput_rps']:.1f}",
                         _ms(lat["p50"]), _ms(lat["p99"]), str(sum(run["errors"].values()))))  # fmt: skip
    path = plots.sweep_plot(curves, model, out / f"{_slug(model)}-sweep.png")
    images.append(path)
    return [
        Heading(text=f"{model}: concurrency sweep (closed loop)", level=3),
        Image(path=path.name, alt=f"{model} latency-throughput curves"),
        Table(
            header=("variant", "concurrency", "req/s", "p50 ms", "p99 ms", "errors"),
            rows=tuple(rows),
        ),  # fmt: skip
    ]


def _open(runs) -> list[Block]:
    rows = tuple(
        (r["variant"], f"{r['rate']:g}", r["arrival"], f"{r['throughput_rps']:.1f}",
         _ms(r["latency_ms"]["p50"]), _ms(r["latency_ms"]["p99"]), str(r["unfinished"]),
         "yes" if r["stable"] else "no")
        for r in runs
    )  # fmt: skip
    header = ("variant", "offered req/s", "arrivals", "served req/s", "p50 ms", "p99 ms",
              "unfinished", "stable")  # fmt: skip
    return [
        Heading(
            text="Fixed arrival rate (open loop; latency from the scheduled send time)", level=3
        ),
        Table(header=header, rows=rows),
    ]


def _generation(record: Path, out: Path, images: list[Path]) -> list[Block]:
    from tf2aif.pipeline.record import read_record

    images_built = read_record(record).images
    rows = [
        (", ".join(i.variants) or i.target, dict(i.durations)) for i in images_built if i.durations
    ]
    if not rows:
        return [Paragraph(text=f"{record}: the build record holds no stage durations.")]
    path = plots.generation_plot(rows, out / "generation-time.png")
    images.append(path)
    table = tuple(
        (label, *(f"{d.get(s, 0.0):.1f}" for s in ("convert", "serve")), f"{sum(d.values()):.1f}")
        for label, d in rows
    )
    return [
        Heading(text="Image generation time"),
        Image(path=path.name, alt="image generation time per image by stage"),
        Table(header=("image (variants)", "convert s", "serve s", "total s"), rows=table),
    ]

"""The rich live view of `tf2aif bench`: one table row per finished run, one status line.

The table stays readable in an 80-column terminal or CI log: labels (variant, load, errors)
fold onto more lines, figures never wrap, and no cell is cut to an ellipsis.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tf2aif.bench.result import RunResult
from tf2aif.cli.console import messages

__all__ = ["LiveView", "results_table", "row_of"]

LABELS = ("variant", "load")
FIGURES = ("req/s", "p50", "p90", "p99", "max")  # latencies in ms, as the title says
TAIL = ("errors", "srv ms")  # srv ms: the server's own mean inference time


def row_of(run: RunResult) -> tuple[str, ...]:
    """The table row of one finished run."""
    data = run.to_dict()
    latency = data["latency_ms"]
    load = f"c={data['concurrency']}" if data["mode"] == "closed" else f"{data['rate']:g}/s"
    stages = data["server_stages"] or {}
    infer = stages.get("inference", {}).get("mean_ms")
    errors = ", ".join(f"{k} {v}" for k, v in data["errors"].items()) or "0"
    return (
        data["variant"],
        load + ("" if data["stable"] else " unstable"),
        _figure(data["throughput_rps"]),
        *(_figure(latency[k]) for k in ("p50", "p90", "p99", "max")),
        errors,
        _figure(infer),
    )


def _figure(value: float | None) -> str:
    """At most 6 characters below a million: fewer decimals as the value grows."""
    if value is None or value != value:
        return "-"
    digits = 2 if abs(value) < 100 else 1 if abs(value) < 1000 else 0
    return f"{value:.{digits}f}"


def results_table(rows: list[tuple[str, ...]]) -> Table:
    table = Table(
        title="tf2aif bench (latency in ms)",
        title_justify="left",
        box=box.MINIMAL,
        show_edge=False,
        pad_edge=False,
    )
    for column in LABELS:
        table.add_column(column, overflow="fold", min_width=len(column), ratio=2)
    # figures fold only when every column is already as narrow as they are: the narrowest
    # wrappable column is shrunk last, so no column is ever dropped
    for column in FIGURES:
        table.add_column(column, justify="right", overflow="fold")
    table.add_column("errors", overflow="fold", min_width=6, ratio=1)
    table.add_column("srv ms", justify="right", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


class LiveView:
    def __init__(self, *, quiet: bool) -> None:
        self._console = messages(quiet=quiet)
        self._rows: list[tuple[str, ...]] = []
        self._status = ""
        self._live = Live(self._render(), console=self._console, refresh_per_second=4)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._status = ""
        self._live.update(self._render())
        self._live.__exit__(*exc)

    def status(self, text: str) -> None:
        self._status = text
        self._live.update(self._render())

    def add(self, run: RunResult) -> None:
        self._rows.append(row_of(run))
        self._live.update(self._render())

    def _render(self) -> Group:
        return Group(results_table(self._rows), Text(self._status, style="dim"))

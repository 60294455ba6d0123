"""The rich live view of `tf2aif bench`: one table row per finished run, one status line."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tf2aif.bench.result import RunResult

__all__ = ["LiveView"]

COLUMNS = ("load", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "srv infer ms")


class LiveView:
    def __init__(self, *, quiet: bool) -> None:
        self._console = Console(stderr=True, quiet=quiet)
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
        data = run.to_dict()
        latency = data["latency_ms"]
        load = f"c={data['concurrency']}" if data["mode"] == "closed" else f"{data['rate']:g}/s"
        stages = data["server_stages"] or {}
        infer = stages.get("inference", {}).get("mean_ms")
        server = "-" if infer is None else f"{infer:.2f}"
        errors = ", ".join(f"{k} {v}" for k, v in data["errors"].items()) or "0"
        self._rows.append(
            (
                data["variant"],
                load + ("" if data["stable"] else " (unstable)"),
                f"{data['throughput_rps']:.1f}",
                *(f"{latency[k]:.2f}" for k in ("p50", "p90", "p99", "max")),
                errors,
                server,
            )
        )
        self._live.update(self._render())

    def _render(self) -> Group:
        table = Table(title="tf2aif bench")
        table.add_column("variant", no_wrap=True)
        for column in COLUMNS:
            table.add_column(column, justify="right", no_wrap=True)
        for row in self._rows:
            table.add_row(*row)
        return Group(table, Text(self._status, style="dim"))

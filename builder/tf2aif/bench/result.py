"""The bench result: one file per bench invocation holding one run per variant x load.

JSON layout is `schema/bench-result.schema.json` (versioned by `schema` + `version`); the CSV has one
row per run with the headline numbers. Both are written with stable key and row order.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tf2aif import __version__
from tf2aif.bench.load import LoadSettings, Measurement
from tf2aif.bench.metrics import StageDelta
from tf2aif.bench.stats import HISTOGRAM_BOUNDS_MS, histogram, keep_samples, summarize
from tf2aif.errors import BenchError
from tf2aif.resources import data_dir

__all__ = [
    "RESULT_SCHEMA",
    "RESULT_VERSION",
    "BenchResult",
    "RunResult",
    "Subject",
    "load_result",
    "dumps",
    "to_csv",
    "validate_result",
]

RESULT_SCHEMA = "tf2aif-bench-result"
RESULT_VERSION = 1
# <platform>/<runtime>/<precision> as tf2aif names variants (see schema/bench-result.schema.json)
VARIANT_ID = re.compile(r"[a-z0-9]+/[a-z0-9]+(-[a-z0-9]+)*/(fp32|fp16|int8)")
SAMPLE_LIMIT = 5000  # raw latency samples kept per run (for box plots); the histogram has all


@dataclass(frozen=True, kw_only=True)
class Subject:
    """What was measured: a variant of a model behind one server."""

    variant: str  # <platform>/<runtime>/<precision>, or a free label for foreign servers
    model: str
    target_kind: str  # url | image | artifact
    target: str  # the URL, image reference or artifact directory
    runtime: str | None = None
    precision: str | None = None
    platform: str | None = None

    @classmethod
    def from_variant(cls, variant: str, **kwargs: Any) -> Subject:
        """Platform, runtime and precision come from `variant` only when it is a variant id;
        a free label (a URL, an image reference) leaves them unknown, never half-parsed."""
        if VARIANT_ID.fullmatch(variant):
            platform, runtime, precision = variant.split("/")
            kwargs = {"platform": platform, "runtime": runtime, "precision": precision, **kwargs}
        return cls(variant=variant, **kwargs)


@dataclass(frozen=True, kw_only=True)
class RunResult:
    subject: Subject
    measurement: Measurement
    request_kind: str
    request_bytes: int
    http_client: str
    stages: Mapping[str, StageDelta] | None = None  # None: the server exports no stage histograms

    def to_dict(self) -> dict[str, Any]:
        m = self.measurement
        ok = m.outcomes.get("ok", 0)
        errors = {k: v for k, v in m.outcomes.items() if k != "ok"}
        requests = ok + sum(errors.values())
        return {
            **asdict(self.subject),
            "mode": m.load.mode,
            "concurrency": m.load.concurrency,
            "rate": m.load.rate,
            "arrival": m.load.arrival if m.load.mode == "open" else None,
            "request_kind": self.request_kind,
            "request_bytes": self.request_bytes,
            "duration_s": m.duration_s,
            "requests": requests,
            "ok": ok,
            "errors": errors,
            "scheduled": m.scheduled,
            "unfinished": m.unfinished,
            "throughput_rps": round(ok / m.duration_s, 3) if m.duration_s > 0 else 0.0,
            "latency_ms": summarize(m.latencies_ms).to_dict(),
            "histogram": histogram(m.latencies_ms),
            "samples_ms": keep_samples(m.latencies_ms, SAMPLE_LIMIT),
            "windows": [asdict(w) for w in m.windows],
            "stable": m.stable,
            "stop_reason": m.stop_reason,
            "client": {
                "http": self.http_client,
                "cpu_s": m.client_cpu_s,
                "cpu_per_request_ms": round(m.client_cpu_s / max(requests, 1) * 1e3, 4),
                "loadavg_1m": m.loadavg_1m,
                "send_lag_ms": _send_lag(m.send_lag_ms),
            },
            "server_stages": None
            if self.stages is None
            else {stage: d.to_dict() for stage, d in sorted(self.stages.items())},
        }


@dataclass(frozen=True, kw_only=True)
class BenchResult:
    settings: LoadSettings
    runs: Sequence[RunResult]
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": RESULT_SCHEMA,
            "version": RESULT_VERSION,
            "created": self.created,
            "tool": {"tf2aif": __version__, "python": platform.python_version()},
            "host": _host(),
            "settings": asdict(self.settings),
            "histogram_bounds_ms": list(HISTOGRAM_BOUNDS_MS),
            "runs": [run.to_dict() for run in self.runs],
        }


def _send_lag(lags_ms: Sequence[float]) -> dict[str, float] | None:
    if not lags_ms:
        return None
    stats = summarize(lags_ms)
    return {"mean": stats.mean, "p99": stats.p99, "max": stats.max}


def _host() -> dict[str, Any]:
    return {
        "machine": platform.machine(),
        "system": platform.system(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


CSV_COLUMNS = (
    "variant", "model", "runtime", "precision", "platform", "target_kind", "target", "mode",
    "concurrency", "rate",
    "request_kind", "requests", "ok", "errors", "error_types", "duration_s", "throughput_rps",
    "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "stable",
)  # fmt: skip


def to_csv(result: Mapping[str, Any]) -> str:
    """One row per run; server stage means become `server_<stage>_ms` columns."""
    stages = sorted({s for run in result["runs"] for s in (run.get("server_stages") or {})})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"server_{s}_ms" for s in stages)])
    for run in result["runs"]:
        latency = run["latency_ms"]
        errors = run["errors"]
        row = {
            **{k: run.get(k) for k in CSV_COLUMNS},
            "errors": sum(errors.values()),
            "error_types": ";".join(f"{k}:{v}" for k, v in sorted(errors.items())),
            **{f"{k}_ms": latency[k] for k in ("mean", "p50", "p90", "p95", "p99", "max")},
        }
        server = run.get("server_stages") or {}
        writer.writerow(
            [_cell(row[c]) for c in CSV_COLUMNS]
            + [_cell(server[s]["mean_ms"]) if s in server else "" for s in stages]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def validate_result(data: Mapping[str, Any]) -> None:
    """Raise BenchError naming the first schema violation."""
    import jsonschema

    schema = json.loads((data_dir("schema") / "bench-result.schema.json").read_text())
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(data)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise BenchError(f"not a valid bench result: {where}: {error.message}")


def load_result(path: str | Path) -> dict[str, Any]:
    from tf2aif.pipeline.yamlfile import Limits, read_text

    # Results hold raw samples, so they may be large: read bounded, parse with json (fast).
    text, issues = read_text(path, limits=Limits(max_bytes=256 * 2**20))
    if issues:
        raise BenchError(f"cannot read bench result: {issues[0]}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchError(
            f"{path}:{exc.lineno}:{exc.colno}: not a JSON bench result: {exc.msg}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise BenchError(f"{path}: not a JSON bench result: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path}: not a bench result: expected a JSON object")
    if data.get("schema") != RESULT_SCHEMA or data.get("version") != RESULT_VERSION:
        raise BenchError(
            f"{path}: not a {RESULT_SCHEMA} version {RESULT_VERSION} file "
            f"(schema={data.get('schema')!r}, version={data.get('version')!r})"
        )
    validate_result(data)
    return data


def dumps(data: Mapping[str, Any]) -> str:
    # NaN (no successful request) is not JSON: write null instead.
    return json.dumps(_no_nan(data), indent=1, sort_keys=True) + "\n"


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value

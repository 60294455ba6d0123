"""`tf2aif bench` and `tf2aif report` end to end against a real local server."""

from __future__ import annotations

import csv
import json
import re

import jsonschema
import pytest

from tf2aif.bench.result import load_result
from tf2aif.cli.main import main
from tf2aif.resources import data_dir

from .conftest import toy_server
from .test_units import record_document, record_image

QUICK = ["--warmup", "0.2", "--window", "0.4", "--max-duration", "1.6", "--quiet"]


def run_cli(*argv) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Two result files: a 'native' baseline and a faster variant, each with a small sweep."""
    tmp_path = tmp_path_factory.mktemp("results")
    with toy_server(service_ms=6) as slow, toy_server(service_ms=2) as fast:
        return [_bench(url, variant, tmp_path) for url, variant in
                ((slow, "cpu/tf/fp32"), (fast, "cpu/tflite/fp32"))]  # fmt: skip


def _bench(url, variant, tmp_path):
    path = tmp_path / f"{variant.replace('/', '-')}.json"
    code = run_cli("bench", "--url", url, "--model", "toy", "--variant", variant,
                   "--sweep", "4", "--json", path, "--csv", path.with_suffix(".csv"), *QUICK)  # fmt: skip
    assert code == 0
    return path


def test_bench_writes_valid_json_and_csv(results):
    data = load_result(results[1])  # validates against schema/bench-result.schema.json
    assert [r["concurrency"] for r in data["runs"]] == [1, 2, 4]
    assert {r["variant"] for r in data["runs"]} == {"cpu/tflite/fp32"}
    assert data["runs"][0]["runtime"] == "tflite" and data["runs"][0]["platform"] == "cpu"
    with results[1].with_suffix(".csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["concurrency"]) for r in rows] == [1, 2, 4]
    for row, run in zip(rows, data["runs"], strict=True):
        assert float(row["p99_ms"]) == run["latency_ms"]["p99"]
        assert float(row["throughput_rps"]) == run["throughput_rps"]


def test_report_renders_plots_markdown_and_html(results, tmp_path):
    record = tmp_path / "tf2aif-record.json"
    record.write_text(json.dumps(record_document("toy", [
        record_image("serve-cpu-tf-fp32", ["cpu/tf/fp32"], tags=["r/toy:tf"],
                     durations={"convert": 0.0, "serve": 31.5}),
        record_image("serve-cpu-arm-tflite-fp32", ["cpu/tflite/fp32", "arm/tflite/fp32"],
                     tags=["r/toy:tflite"], durations={"convert": 12.5, "serve": 20.0}),
    ])))  # fmt: skip
    out = tmp_path / "report"
    assert run_cli("report", *results, "--record", record, "--out", out) == 0
    markdown = (out / "report.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert sorted(images) == sorted(
        ["generation-time.png", "toy-latency-c1.png", "toy-speedup.png", "toy-sweep.png"]
    )
    for name in images:
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 15_000
    html = (out / "report.html").read_text()
    assert all(f'src="{name}"' in html for name in images)
    # the faster variant's p50 ratio against the native run is in the table and is below 1
    row = next(line for line in markdown.splitlines() if line.startswith("| cpu/tflite/fp32 | "))
    ratio = float(row.split("|")[9])
    assert 0 < ratio < 1
    assert "| cpu/tflite/fp32, arm/tflite/fp32 | 12.5 | 20.0 | 32.5 |" in markdown


def test_bench_needs_exactly_one_kind_of_target(capsys):
    assert run_cli("bench", "--concurrency", "1") == 2
    assert "one of --url, --image, --record or --artifact" in capsys.readouterr().err


def test_report_rejects_a_file_that_is_not_a_result(tmp_path, capsys):
    bogus = tmp_path / "x.json"
    bogus.write_text('{"schema": "tf2aif-bench-result", "version": 1, "runs": []}')
    assert run_cli("report", bogus, "--out", tmp_path / "r") == 1
    assert "not a valid bench result" in capsys.readouterr().err


def test_profile_mode_measures_service_time_capacity_and_rate(start_toy, tmp_path):
    url = start_toy(service_ms=5)
    out = tmp_path / "profile.json"
    assert run_cli("bench", "--profile", "--url", url, "--model", "toy", "--variant",
                   "cpu/toy/fp32", "--json", out, *QUICK) == 0  # fmt: skip
    document = json.loads(out.read_text())
    schema = json.loads((data_dir("schema") / "bench-profile.schema.json").read_text())
    jsonschema.validate(document, schema)
    profile = document["profiles"][0]
    service = profile["service_time"]
    assert service["requests"] == 500 and service["errors"] == 0
    assert 0.005 <= service["mean_s"] < 0.015
    assert service["second_moment_s2"] >= service["mean_s"] ** 2
    peak = profile["capacity"]["peak_rps"]
    assert 100 < peak <= 200  # one 5 ms device
    rate = profile["sustainable_rate_rps"]
    assert rate is not None and rate < peak
    assert profile["rate_checks"][-1]["sustainable"] is True
    assert profile["memory"]["rss_bytes"] is None  # a URL target: not ours to inspect

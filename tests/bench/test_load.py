"""The load generator against a real local OIP server: numbers, errors, bounds, open-loop queueing."""

from __future__ import annotations

import asyncio
import json

import pytest

from tf2aif.bench.load import BACKLOG_PER_CONNECTION, Load, LoadSettings
from tf2aif.bench.result import BenchResult, dumps, to_csv, validate_result
from tf2aif.bench.runner import Bench, InputSpec, bench_endpoint
from tf2aif.bench.targets import free_port, url_endpoint

FAST = LoadSettings(warmup_s=0.3, window_s=0.5, max_duration_s=3.0, timeout_s=5.0)


def bench(url, loads, settings=FAST, *, client="aiohttp", inputs=None, model="toy") -> dict:
    inputs = inputs or InputSpec()
    with url_endpoint(url, model=model, variant="cpu/toy/fp32") as endpoint:
        job = Bench(endpoint=endpoint, inputs=inputs, loads=loads, settings=settings,
                    http_client=client)  # fmt: skip
        runs = asyncio.run(bench_endpoint(job))
    data = json.loads(dumps(BenchResult(settings=settings, runs=runs).to_dict()))
    validate_result(data)
    return data


def check_sane(run: dict) -> None:
    lat = run["latency_ms"]
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert lat["count"] == run["ok"] == sum(run["histogram"])
    assert run["requests"] == run["ok"] + sum(run["errors"].values())
    assert run["throughput_rps"] == pytest.approx(run["ok"] / run["duration_s"], rel=1e-3)
    assert run["duration_s"] >= FAST.window_s
    assert sum(w["requests"] for w in run["windows"]) <= run["requests"]


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
def test_closed_loop_numbers_and_server_stage_split(start_toy, client):
    url = start_toy(service_ms=4)
    data = bench(url, [Load(concurrency=1), Load(concurrency=3)], client=client)
    one, three = data["runs"]
    for run in (one, three):
        check_sane(run)
        assert run["errors"] == {}
        assert run["client"]["http"] == client
        assert run["client"]["send_lag_ms"] is None  # a closed loop has no schedule
        # the toy holds its "device" 4 ms per request
        assert 4.0 <= run["server_stages"]["inference"]["mean_ms"] < 8.0
        assert run["server_stages"]["inference"]["count"] == pytest.approx(run["requests"], rel=0.1)
    assert one["latency_ms"]["p50"] >= 4.0
    assert one["throughput_rps"] <= 1000 / 4
    # three workers share one 4 ms device: they queue, throughput stays at most one per 4 ms
    assert three["server_stages"]["queue"]["mean_ms"] > one["server_stages"]["queue"]["mean_ms"]
    assert three["latency_ms"]["p50"] >= 2 * 4.0
    assert three["throughput_rps"] <= 1000 / 4 * 1.05
    csv_rows = to_csv(data).splitlines()
    assert len(csv_rows) == 3
    assert "server_inference_ms" in csv_rows[0].split(",")


def test_http_errors_are_counted_by_status(start_toy):
    url = start_toy(fail_every=4)
    run = bench(url, [Load(concurrency=2)])["runs"][0]
    check_sane(run)
    assert set(run["errors"]) == {"http_500"}
    assert run["errors"]["http_500"] / run["requests"] == pytest.approx(0.25, abs=0.02)


def test_timeouts_and_refused_connections_are_counted():
    settings = LoadSettings(warmup_s=0.1, window_s=0.3, max_duration_s=0.9, timeout_s=1.0)
    refused = bench_against_nothing(settings)
    assert set(refused["errors"]) == {"connection"} and refused["ok"] == 0
    assert refused["latency_ms"]["p50"] is None


def bench_against_nothing(settings):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    with url_endpoint(url, model="toy", variant="nothing") as endpoint:
        from tf2aif.bench.payloads import health_payload
        from tf2aif.bench.runner import Prepared, endpoint_subject, measure, run_result

        prepared = Prepared(model="toy", metadata={}, payloads=(health_payload(),))
        job = Bench(endpoint=endpoint, inputs=InputSpec(kind="health"), loads=(), settings=settings)
        m = asyncio.run(measure(job, prepared, Load(concurrency=1)))
        run = run_result(job, endpoint_subject(endpoint, prepared), prepared, m)
    return json.loads(dumps(run.to_dict()))


def test_slow_answers_become_timeouts(start_toy):
    url = start_toy(service_ms=400)
    settings = LoadSettings(warmup_s=0.1, window_s=0.5, max_duration_s=1.0, timeout_s=0.1)
    run = bench(url, [Load(concurrency=2)], settings)["runs"][0]
    assert run["ok"] == 0 and run["errors"]["timeout"] >= 2


def test_max_requests_bounds_the_measurement(start_toy):
    url = start_toy()
    settings = LoadSettings(warmup_s=0.2, window_s=5.0, max_duration_s=10.0, max_requests=300)
    run = bench(url, [Load(concurrency=1)], settings)["runs"][0]
    assert run["stop_reason"] == "max_requests"
    assert run["requests"] == 300
    assert run["duration_s"] < 5.0


def test_open_loop_shows_queueing_beyond_capacity(start_toy):
    url = start_toy(service_ms=10)  # one request per 10 ms: capacity about 100 req/s
    data = bench(url, [Load(rate=40, arrival="constant"), Load(rate=200, arrival="poisson")])
    under, over = data["runs"]
    for run in (under, over):
        check_sane(run)
        assert run["mode"] == "open"
    assert under["throughput_rps"] == pytest.approx(40, rel=0.15)
    assert under["latency_ms"]["p50"] < 25
    # in flight when the run ends: rate x latency, about 1; a busy machine's stalls add a few,
    # still far from the pile-up beyond capacity (> 50 below)
    assert under["unfinished"] <= 10
    lag = under["client"]["send_lag_ms"]  # how late sends left: inside every latency above
    assert 0 <= lag["mean"] <= lag["max"] and lag["p99"] <= lag["max"]
    # beyond capacity the queue grows: served rate caps near 100/s, latency climbs, work piles up
    assert over["throughput_rps"] < 110
    assert over["latency_ms"]["p50"] > 10 * under["latency_ms"]["p50"]
    assert over["unfinished"] > 50
    assert not over["stable"]
    p50s = [w["p50_ms"] for w in over["windows"]]
    assert p50s[-1] > 2 * p50s[0]


def test_an_open_loop_the_client_cannot_keep_up_with_ends_on_time_with_a_bounded_backlog(
    start_toy,
):
    url = start_toy(service_ms=50)  # 20 req/s at most; asked for 2,000 req/s on 2 connections
    settings = LoadSettings(warmup_s=0.2, window_s=0.5, max_duration_s=1.0, timeout_s=10.0,
                            max_connections=2)  # fmt: skip
    run = bench(url, [Load(rate=2000, arrival="constant")], settings)["runs"][0]
    check_sane(run)
    backlog = settings.max_connections * BACKLOG_PER_CONNECTION
    # the arrivals the client could not even hold are errors, not silently dropped
    assert run["errors"]["not_sent"] > 1000
    assert run["unfinished"] <= backlog + 1
    assert run["duration_s"] < 2 * settings.max_duration_s
    assert run["throughput_rps"] < 1000 / 50 * 1.2


def test_json_tensors_and_samples_payloads(start_toy, tmp_path):
    module = tmp_path / "samples.py"
    module.write_text(
        "import numpy as np\n"
        "def samples():\n"
        "    for i in range(3):\n"
        "        yield {'x': np.full((1, 4), i, dtype=np.float32)}, i\n"
    )
    url = start_toy()
    inputs = InputSpec(kind="samples", samples=f"{module}:samples", binary=False)
    run = bench(url, [Load(concurrency=1)], inputs=inputs, model=None)["runs"][0]
    assert run["model"] == "toy"  # found through POST /v2/repository/index
    assert run["request_kind"] == "infer-json" and run["errors"] == {} and run["ok"] > 0

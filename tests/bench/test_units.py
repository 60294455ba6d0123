"""Small pieces: statistics, stability rule, /metrics parsing, payload encoding, record reading,
server CPU from /proc and engine stats, where a profile is written."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from tf2aif.bench.metrics import stage_deltas, stage_totals
from tf2aif.bench.payloads import encode_infer, random_inputs
from tf2aif.bench.record import pick_variant
from tf2aif.bench.stats import HISTOGRAM_BOUNDS_MS, histogram, keep_samples, summarize, within
from tf2aif.errors import Tf2aifError
from tf2aif.pipeline.record import image_reference, read_record


def test_summarize_matches_numpy_and_orders_percentiles():
    values = np.random.default_rng(1).lognormal(1.0, 0.5, 10_000)
    stats = summarize(values.tolist())
    assert stats.p99 == pytest.approx(np.percentile(values, 99), abs=1e-3)
    assert stats.min <= stats.p50 <= stats.p90 <= stats.p95 <= stats.p99 <= stats.max
    assert stats.count == 10_000


def test_histogram_buckets_every_sample_once():
    values = [0.001, 0.5, 1.0, 1.01, 250.0, 1e9]
    counts = histogram(values)
    assert len(counts) == len(HISTOGRAM_BOUNDS_MS) + 1 and sum(counts) == len(values)
    assert counts[-1] == 1  # 1e9 ms overflows
    assert counts[HISTOGRAM_BOUNDS_MS.index(1.0)] == 1  # bounds are inclusive upper edges


def test_keep_samples_is_a_seeded_subset():
    values = list(range(100))
    assert keep_samples(values, 10) == keep_samples(values, 10)
    assert len(keep_samples(values, 10)) == 10 and keep_samples(values, 200) == values


@pytest.mark.parametrize(
    ("values", "stable"),
    [
        ([100, 105, 109], True),
        ([100, 105, 111], False),
        ([0, 0, 0], True),
        ([1, float("nan"), 1], False),
    ],
)
def test_within_tolerance(values, stable):
    assert within(values, 0.10) is stable


def test_stage_totals_from_a_real_prometheus_page():
    registry = CollectorRegistry()
    hist = Histogram("srv_stage_seconds", "", ["model", "stage"], registry=registry)
    other = Histogram("srv_bytes", "", ["stage"], registry=registry)  # a second family is ignored
    hist.labels("a", "inference").observe(0.010)
    hist.labels("b", "inference").observe(1.0)
    other.labels("inference").observe(5000)
    before = stage_totals(generate_latest(registry).decode(), model="a")
    hist.labels("a", "inference").observe(0.030)
    hist.labels("a", "queue").observe(0.002)
    after = stage_totals(generate_latest(registry).decode(), model="a")
    deltas = stage_deltas(before, after)
    assert deltas["inference"].count == 1 and deltas["inference"].mean_ms == pytest.approx(30)
    assert deltas["queue"].mean_ms == pytest.approx(2)


def test_binary_request_layout():
    metadata = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 8, 8, 1]}]}
    tensors = random_inputs(metadata)
    assert tensors["image"].shape == (1, 8, 8, 1) and tensors["image"].dtype == np.float32
    payload = encode_infer("digits", tensors, binary=True)
    headers = dict(payload.headers)
    length = int(headers["Inference-Header-Content-Length"])
    header = json.loads(payload.body[:length])
    assert header["inputs"][0]["parameters"]["binary_data_size"] == 256
    assert payload.body[length:] == tensors["image"].tobytes()
    assert payload.path == "/v2/models/digits/infer"


def test_record_reader_and_variant_choice(tmp_path):
    path = tmp_path / "tf2aif-record.json"
    path.write_text(json.dumps(record_document("digits", [
        record_image("serve-cpu-arm-tflite-int8", ["cpu/tflite/int8", "arm/tflite/int8"],
                     tags=[], digest="sha256:ab", durations={"convert": 1.5, "serve": 2.0})])))  # fmt: skip
    record = read_record(path)
    assert record.name == "digits" and image_reference(record.images[0]) == "r/digits@sha256:ab"
    assert pick_variant(record.images[0].variants, "arm") == "arm/tflite/int8"
    assert pick_variant(("agx/tensorrt/fp16",), "arm") == "agx/tensorrt/fp16"
    assert pick_variant(("gpu/tensorrt/fp16",), "arm") is None
    path.write_text('{"images": 3}')
    with pytest.raises(Tf2aifError, match="errors in this build record"):
        read_record(path)


def record_image(target, variants, *, tags, digest=None, durations=None) -> dict:
    runtime, precision = variants[0].split("/")[1:]
    return {
        "target": target, "variants": variants, "runtime": runtime, "precision": precision,
        "platforms": ["linux/amd64"], "image": "r/digits", "tags": tags, "digest": digest,
        "status": "success", "reason": "", "convert_target": f"convert-{runtime}-{precision}",
        "fidelity": {}, "durations": durations or {}, "base_images": {}, "labels": {},
    }  # fmt: skip


def record_document(name, images) -> dict:
    return {"version": 1, "manifest": "tf2aif.yaml", "name": name, "model_digest": "sha256:00",
            "registry": "r", "created": "2026-11-23T15:00:00Z", "tools": {}, "images": images}  # fmt: skip


def test_process_tree_cpu_counts_a_busy_child():
    from tf2aif.bench.targets import process_tree_cpu

    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])",
        ]
    )
    try:
        seen = 0.0
        while parent.poll() is None:  # the child burns 0.3 s of CPU, then both exit
            seen = max(seen, process_tree_cpu(parent.pid) or 0.0)
            time.sleep(0.02)
    finally:
        parent.wait()
    assert 0.15 <= seen <= 1.5
    assert process_tree_cpu(parent.pid) is None  # gone


def test_container_cpu_is_read_from_the_engine_stats():
    from tf2aif.bench.targets import container_cpu_seconds

    stats = {"cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000}, "online_cpus": 2}}
    assert container_cpu_seconds(stats) == 2.5
    assert container_cpu_seconds({"cpu_stats": {}}) is None


def test_server_cpu_and_processing_per_request_from_the_probes():
    from tf2aif.bench.profile import processing_per_request, server_cpu_per_request
    from tf2aif.bench.runner import ServerSample

    first = ServerSample(stages={"preprocess": (10, 0.01), "inference": (10, 0.05)}, cpu_s=4.0)
    last = ServerSample(stages={"preprocess": (110, 0.03), "inference": (110, 0.25)}, cpu_s=4.2)
    assert server_cpu_per_request(first, last, 100) == pytest.approx(0.002)
    assert processing_per_request(first, last, 100) == pytest.approx(0.0002)
    blind = ServerSample(stages=None, cpu_s=None)
    assert server_cpu_per_request(blind, blind, 100) is None
    assert processing_per_request(first, ServerSample(stages=first.stages, cpu_s=1), 0) is None
    no_processing = {"inference": (10, 0.05)}
    assert (
        processing_per_request(
            ServerSample(stages=no_processing, cpu_s=0),
            ServerSample(stages=no_processing, cpu_s=0),
            5,
        )
        is None
    )


def test_profile_goes_next_to_the_build_record_of_the_project(tmp_path):
    from tf2aif.cli.bench import project_profile_path

    record = tmp_path / "tf2aif-record.json"
    assert project_profile_path(record, []) == tmp_path / "tf2aif-profile.json"
    artifact = tmp_path / ".tf2aif" / "artifacts" / "convert-tflite-fp32"
    artifact.mkdir(parents=True)
    assert project_profile_path(None, [artifact]) is None  # no build record there
    record.write_text("{}")
    assert project_profile_path(None, [artifact]) == tmp_path.resolve() / "tf2aif-profile.json"
    assert project_profile_path(None, [tmp_path / "elsewhere"]) is None


def test_cold_start_fit_recovers_the_curve_it_was_given():
    import math

    from tf2aif.bench.stats import fit_cold_start

    warm, extra, tau = 0.005, 0.002, 0.012
    points = [(g, warm + extra * (1 - math.exp(-g / tau))) for g in (0.005, 0.02, 0.08)]
    fitted_extra, fitted_tau = fit_cold_start(warm, points)
    assert fitted_extra == pytest.approx(extra, rel=0.1)
    assert fitted_tau == pytest.approx(tau, rel=0.25)  # a 1.25x log grid
    # no cold penalty measured (or less CPU after idling): nothing extra
    assert fit_cold_start(warm, [(g, warm * 0.98) for g in (0.005, 0.02, 0.08)])[0] == 0.0


def test_open_loop_sends_never_leave_before_their_scheduled_time():
    import asyncio

    from tf2aif.bench.load import wait_until

    async def early_by() -> list[float]:
        out = []
        for delay in (0.0, 0.0004, 0.003, 0.011):
            when = time.perf_counter() + delay
            await wait_until(when)
            out.append(when - time.perf_counter())
        return out

    assert all(early <= 0 for early in asyncio.run(early_by()))

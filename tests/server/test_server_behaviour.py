"""Robustness, metrics, batching, back-pressure, readiness and shutdown of the real server.

Uses the TFLite digits artifact (fastest to start); readiness uses TF (slowest to load).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from .serving import ServerProcess, running_server, sample_value

pytestmark = pytest.mark.conversion

INFER = "/v2/models/digits/infer"


def _valid_json(images: np.ndarray) -> dict:
    return {
        "inputs": [
            {
                "name": "image",
                "shape": list(images.shape),
                "datatype": "FP32",
                "data": images.ravel().tolist(),
            }
        ]
    }


def _binary_body(images: np.ndarray, *, claimed: int | None = None) -> tuple[bytes, dict]:
    raw = images.astype(np.float32).tobytes()
    header = {
        "inputs": [
            {
                "name": "image",
                "shape": list(images.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(raw) if claimed is None else claimed},
            }
        ],
        "outputs": [{"name": "output_0", "parameters": {"binary_data": True}}],
    }
    text = json.dumps(header).encode()
    headers = {
        "Inference-Header-Content-Length": str(len(text)),
        "content-type": "application/octet-stream",
    }
    return text + raw, headers


@pytest.fixture(scope="module")
def tflite_server(digits_artifacts):
    with running_server(digits_artifacts["tflite"], max_body_bytes=100_000) as server:
        yield server


def _assert_serves(client: httpx.Client, images: np.ndarray, reference: np.ndarray) -> None:
    response = client.post(INFER, json=_valid_json(images[:2]))
    assert response.status_code == 200, response.text
    data = np.asarray(response.json()["outputs"][0]["data"]).reshape(2, 10)
    np.testing.assert_allclose(data, reference[:2], atol=1e-4)


def _bad_requests(images: np.ndarray) -> list[tuple[str, dict, int, str]]:
    one = images[:1]
    good = _valid_json(one)
    wrong_type = json.loads(json.dumps(good))
    wrong_type["inputs"][0]["datatype"] = "INT32"
    wrong_type["inputs"][0]["data"] = [0] * 64
    wrong_shape = json.loads(json.dumps(good))
    wrong_shape["inputs"][0]["shape"] = [1, 8, 8, 3]
    wrong_shape["inputs"][0]["data"] = [0.0] * 192
    wrong_name = json.loads(json.dumps(good))
    wrong_name["inputs"][0]["name"] = "imagee"
    nan = _valid_json(one)
    nan["inputs"][0]["data"][5] = float("nan")
    inf = _valid_json(one)
    inf["inputs"][0]["data"][0] = float("inf")
    short_data = json.loads(json.dumps(good))
    short_data["inputs"][0]["data"] = [0.0] * 10
    strings = json.loads(json.dumps(good))
    strings["inputs"][0]["data"] = ["a"] * 64
    body, headers = _binary_body(one, claimed=1000)
    lying_long, lying_headers = body, headers
    body, headers = _binary_body(one, claimed=100)
    lying_short, short_headers = body, headers
    body, headers = _binary_body(one)
    past_end = dict(headers, **{"Inference-Header-Content-Length": str(len(body) + 5)})
    json_headers = {"content-type": "application/json"}
    return [
        ("malformed JSON", {"content": b"{not json", "headers": json_headers}, 400, "not valid JSON"),
        ("no inputs", {"json": {"inputs": []}}, 400, "non-empty 'inputs'"),
        ("wrong datatype", {"json": wrong_type}, 400, "datatype INT32 given, the model takes FP32"),
        ("wrong shape", {"json": wrong_shape}, 400, "shape [1, 8, 8, 3] does not fit"),
        ("wrong input name", {"json": wrong_name}, 400, "unknown input 'imagee' (did you mean \"image\"?)"),
        ("data count", {"json": short_data}, 400, "needs 64 values, 'data' has 10"),
        ("strings for FP32", {"json": strings}, 400, "does not hold float32 values"),
        ("NaN", {"content": json.dumps(nan).encode(), "headers": json_headers}, 400, "NaN or Inf"),
        ("Inf", {"content": json.dumps(inf).encode(), "headers": json_headers}, 400, "NaN or Inf"),
        ("binary size too big", {"content": lying_long, "headers": lying_headers}, 400, "runs past the end"),
        ("binary size too small", {"content": lying_short, "headers": short_headers}, 400, "needs 256 bytes"),
        ("header length past body", {"content": body, "headers": past_end}, 400, "Inference-Header-Content-Length is"),
        ("header length not int", {"content": body, "headers": dict(headers, **{"Inference-Header-Content-Length": "x"})}, 400, "must be an integer"),
        ("unknown output", {"json": {**good, "outputs": [{"name": "logits"}]}}, 400, "unknown output 'logits'"),
        ("oversized body", {"json": _valid_json(np.zeros((512, 8, 8, 1), np.float32))}, 413, "over the 100000-byte limit"),
        ("wrong content type", {"content": b"x=1", "headers": {"content-type": "text/plain"}}, 415, "content type 'text/plain'"),
        ("bad content encoding", {"content": b"x", "headers": {**json_headers, "content-encoding": "br"}}, 415, "content encoding 'br'"),
        ("corrupt gzip", {"content": b"notgzip", "headers": {**json_headers, "content-encoding": "gzip"}}, 400, "not valid gzip"),
    ]  # fmt: skip


def test_every_bad_request_gets_a_clear_4xx_and_the_server_keeps_serving(
    tflite_server, held_out, tf_reference
):
    images, _ = held_out
    with httpx.Client(base_url=tflite_server.url) as client:
        for case, kwargs, status, text in _bad_requests(images):
            response = client.post(INFER, **kwargs)
            assert response.status_code == status, (case, response.text)
            assert response.headers["content-type"] == "application/json", case
            assert text in response.json()["error"], (case, response.json())
            _assert_serves(client, images, tf_reference)


def test_unknown_model_version_and_route_are_404(tflite_server, held_out, tf_reference):
    images, _ = held_out
    with httpx.Client(base_url=tflite_server.url) as client:
        cases = [
            (
                "POST",
                "/v2/models/mnist/infer",
                "unknown model 'mnist'; this server serves 'digits'",
            ),
            ("GET", "/v2/models/mnist", "unknown model 'mnist'"),
            ("POST", "/v2/models/digits/versions/7/infer", "has no version '7'"),
            ("GET", "/v2/nothing/here", "no route /v2/nothing/here"),
        ]
        for method, path, text in cases:
            response = client.request(method, path, json=_valid_json(images[:1]))
            assert response.status_code == 404, path
            assert text in response.json()["error"]
            _assert_serves(client, images, tf_reference)
        response = client.get(INFER)
        assert response.status_code == 405 and "GET is not allowed" in response.json()["error"]


def test_gzip_request_and_versioned_infer(tflite_server, held_out, tf_reference):
    images, _ = held_out
    body = gzip.compress(json.dumps(_valid_json(images[:3])).encode())
    response = httpx.post(
        tflite_server.url + "/v2/models/digits/versions/1/infer",
        content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["shape"] == [3, 10]
    np.testing.assert_allclose(np.reshape(output["data"], (3, 10)), tf_reference[:3], atol=1e-4)


def test_predict_errors(tflite_server, held_out, tf_reference):
    images, _ = held_out
    url = tflite_server.url + "/v2/models/digits/predict"
    response = httpx.post(url, content=b"\x89PNG broken", headers={"content-type": "image/png"})
    assert response.status_code == 400
    assert response.json()["error"].startswith(
        "preprocess rejected the payload: UnidentifiedImageError"
    )
    response = httpx.post(url, content=b"abc", headers={"content-type": "text/csv"})
    assert (
        response.status_code == 400
        and "unsupported content type 'text/csv'" in response.json()["error"]
    )
    pixels = (images[0].reshape(8, 8) * 16).round().tolist()
    response = httpx.post(url, json={"pixels": pixels})
    assert response.status_code == 200
    assert response.json()["digit"] == int(np.argmax(tf_reference[0]))


def test_predict_without_processing_module_is_404(digits_artifacts, tmp_path):
    artifact = tmp_path / "bare"
    shutil.copytree(digits_artifacts["tflite"], artifact)
    info = json.loads((artifact / "tf2aif-artifact.json").read_text())
    info["processing"] = None
    (artifact / "tf2aif-artifact.json").write_text(json.dumps(info))
    with running_server(artifact) as server:
        response = httpx.post(server.url + "/v2/models/digits/predict", content=b"x")
        assert response.status_code == 404
        assert response.json()["error"] == (
            "model 'digits' has no processing module; send tensors to /v2/models/digits/infer instead"
        )


def test_metrics_after_requests(tflite_server):
    before = tflite_server.metrics()
    with httpx.Client(base_url=tflite_server.url) as client:
        for _ in range(5):
            assert client.post(INFER, json=_valid_json(np.zeros((1, 8, 8, 1)))).status_code == 200
        assert (
            client.post(
                INFER, content=b"{", headers={"content-type": "application/json"}
            ).status_code
            == 400
        )
    after = tflite_server.metrics()

    def delta(family: str, name: str, **labels: str) -> float:
        try:
            old = sample_value(before[family], name, **labels)
        except KeyError:
            old = 0.0
        return sample_value(after[family], name, **labels) - old

    assert delta("tf2aif_requests", "tf2aif_requests_total", endpoint="infer", status="200") == 5
    assert delta("tf2aif_requests", "tf2aif_requests_total", endpoint="infer", status="400") == 1
    for stage in ("queue", "inference"):
        count = delta(
            "tf2aif_stage_duration_seconds", "tf2aif_stage_duration_seconds_count", stage=stage
        )
        assert count == 5, stage
    assert delta("tf2aif_batch_size", "tf2aif_batch_size_count") == 5
    assert delta("tf2aif_batch_size", "tf2aif_batch_size_sum") == 5
    assert sample_value(after["tf2aif_inflight_requests"], "tf2aif_inflight_requests") == 0
    assert sample_value(after["tf2aif_queue_depth"], "tf2aif_queue_depth") == 0
    assert sample_value(after["tf2aif_model_ready"], "tf2aif_model_ready", runtime="tflite") == 1
    assert "tf2aif_stage_duration_seconds_bucket" in httpx.get(tflite_server.url + "/metrics").text


def test_openapi_and_docs(tflite_server):
    document = httpx.get(tflite_server.url + "/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert {"200", "400", "404", "413", "415", "503"} <= set(infer["responses"])
    assert "/v2/models/{name}/versions/{version}/infer" in document["paths"]
    page = httpx.get(tflite_server.url + "/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/v2/models/{name}/predict" in page.text


async def _fire(url: str, count: int, concurrency: int, images: np.ndarray) -> list[int]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    body = json.dumps(_valid_json(images[:1])).encode()
    statuses: list[int] = []
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one() -> None:
            async with gate:
                response = await client.post(
                    INFER, content=body, headers={"content-type": "application/json"}
                )
                statuses.append(response.status_code)

        await asyncio.gather(*(one() for _ in range(count)))
    return statuses


def test_dynamic_batching_forms_batches_under_concurrent_load(digits_artifacts, held_out):
    images, _ = held_out
    with running_server(
        digits_artifacts["tflite"],
        max_queue_delay_ms=20,
        max_batch_size=16,
        adaptive_batching=False,
    ) as server:
        statuses = asyncio.run(_fire(server.url, 64, 32, images))
        assert statuses == [200] * 64
        samples = server.metrics()["tf2aif_batch_size"]
        batches = sample_value(samples, "tf2aif_batch_size_count")
        rows = sample_value(samples, "tf2aif_batch_size_sum")
        singles = sample_value(samples, "tf2aif_batch_size_bucket", le="1.0")
        assert rows == 64  # warm-up runs outside the batcher and is not counted
        assert batches < 32, f"{batches} batches for 64 requests"
        assert singles < batches  # some batches held more than one request


def test_queue_full_answers_503_with_retry_after(digits_artifacts, held_out, tf_reference):
    images, _ = held_out
    options = {
        "max_queue_size": 2,
        "max_queue_delay_ms": 1500,
        "max_batch_size": 64,
        "adaptive_batching": False,
    }
    with running_server(digits_artifacts["tflite"], **options) as server:
        statuses = asyncio.run(_fire(server.url, 6, 6, images))
        assert sorted(statuses) == [200, 200, 503, 503, 503, 503]
        response = httpx.post(server.url + INFER, json=_valid_json(images[:1]), timeout=10)
        assert response.status_code == 200

        # the 503 body and header
        async def two_then_one() -> httpx.Response:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                first = [client.post(INFER, json=_valid_json(images[:1])) for _ in range(2)]
                tasks = [asyncio.create_task(request) for request in first]
                await asyncio.sleep(0.3)
                third = await client.post(INFER, json=_valid_json(images[:1]))
                await asyncio.gather(*tasks)
                return third

        third = asyncio.run(two_then_one())
        assert third.status_code == 503
        assert third.headers["retry-after"] == "1"
        assert third.json()["error"].startswith("server busy: 2 requests are already waiting")


def test_bounded_load_2000_requests_at_concurrency_32_without_errors(tflite_server, held_out):
    images, _ = held_out
    started = time.perf_counter()
    statuses = asyncio.run(_fire(tflite_server.url, 2000, 32, images))
    elapsed = time.perf_counter() - started
    assert len(statuses) == 2000
    assert set(statuses) == {200}
    print(f"2000 requests at concurrency 32: {elapsed:.2f} s, {2000 / elapsed:.0f} req/s")


def test_not_ready_until_loaded_and_warmed_up(digits_artifacts, held_out):
    """TF takes seconds to import and load: live answers at once, ready only after warm-up."""
    images, _ = held_out
    server = ServerProcess(digits_artifacts["tf"])
    seen = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                live = httpx.get(server.url + "/v2/health/live", timeout=2).status_code
                ready = httpx.get(server.url + "/v2/health/ready", timeout=2)
                model_ready = httpx.get(server.url + "/v2/models/digits/ready", timeout=2)
                infer = httpx.post(server.url + INFER, json=_valid_json(images[:1]), timeout=30)
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            seen.append((live, ready.status_code, model_ready.status_code, infer.status_code))
            if model_ready.status_code == 503:
                assert model_ready.json()["state"] == "loading"
            if infer.status_code == 503:
                assert infer.json()["error"] == "model 'digits' is not ready: loading"
                assert infer.headers["retry-after"] == "1"
            if seen[-1] == (200, 200, 200, 200):
                break
        assert seen[0] == (200, 503, 503, 503), seen[:3]
        assert seen[-1] == (200, 200, 200, 200), f"not ready after 90 s: {seen[-3:]}"
        for column in range(4):  # once ready, never not ready again
            statuses = [row[column] for row in seen]
            assert statuses == sorted(statuses, key=lambda status: status != 503), column
    finally:
        server.terminate()


def test_bad_artifact_fails_fast_with_a_clear_message(tmp_path, digits_artifacts):
    artifact = tmp_path / "odd"
    shutil.copytree(digits_artifacts["tflite"], artifact)
    info = json.loads((artifact / "tf2aif-artifact.json").read_text())
    (artifact / "tf2aif-artifact.json").write_text(json.dumps(info | {"runtime": "tflit"}))
    server = ServerProcess(artifact)
    assert server.process.wait(60) == 1
    assert (
        "the artifact's runtime 'tflit' has no server backend (did you mean \"tflite\"?)"
        in server.logs()
    )
    server = ServerProcess(tmp_path / "missing")
    assert server.process.wait(60) == 1
    assert "no tf2aif-artifact.json; is this a tf2aif artifact directory?" in server.logs()


def test_graceful_shutdown_finishes_in_flight_requests(digits_artifacts, held_out):
    images, _ = held_out
    server = ServerProcess(
        digits_artifacts["tflite"],
        max_queue_delay_ms=1500,
        max_batch_size=8,
        adaptive_batching=False,
    )
    server.wait_ready()
    result: dict = {}

    def slow_request() -> None:
        started = time.perf_counter()
        response = httpx.post(server.url + INFER, json=_valid_json(images[:1]), timeout=30)
        result.update(status=response.status_code, seconds=time.perf_counter() - started)

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.4)  # the request now waits in the batcher for company
    # uvicorn finishes the request, shuts down, then re-raises SIGTERM (exit by the signal)
    assert server.terminate() in (0, -signal.SIGTERM)
    thread.join()
    assert result["status"] == 200
    assert result["seconds"] >= 1.4  # it was held for the full queue delay, then answered
    logs = server.logs()
    assert logs.index("Shutting down") < logs.index("Finished server process")


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to nobody"
)
def test_runs_as_a_non_root_user(digits_artifacts, held_out, tf_reference):
    images, _ = held_out
    shared = Path(tempfile.mkdtemp(prefix="tf2aif-nonroot-"))
    try:
        shutil.copytree(digits_artifacts["tflite"], shared / "artifact")
        for path in [shared, *shared.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        server = ServerProcess(shared / "artifact", prefix=drop)
        try:
            server.wait_ready()
            with httpx.Client(base_url=server.url) as client:
                _assert_serves(client, images, tf_reference)
            with open(f"/proc/{server.process.pid}/status") as status:
                uid_line = next(line for line in status if line.startswith("Uid:"))
            assert uid_line.split()[1:] == ["65534"] * 4
        finally:
            server.terminate()
    finally:
        shutil.rmtree(shared)

"""Hostile requests against the real server: every one gets a 4xx with a reason, none a 5xx or
a hang, the server keeps serving, and its resident memory stays bounded (decompression bombs,
oversized batch shapes)."""

from __future__ import annotations

import socket
import time

import httpx
import numpy as np
import pytest

from tf2aif.image.artifact import read_artifact
from tf2aif.image.server.backends import BackendSettings, create_backend

from .hostile import (
    INFER,
    PREDICT,
    TIMEOUT,
    assert_refused_with_reason,
    assert_serves,
    binary_request,
    png_claiming,
    real_png,
    rss_mib,
    valid_request,
)
from .serving import running_server

pytestmark = pytest.mark.conversion

JSON = {"content-type": "application/json"}
FLOATS = ",".join(["0"] * 64).encode()


def _with_data(data: bytes, *, extra: bytes = b"") -> bytes:
    return (
        b'{"inputs":[{"name":"image","shape":[1,8,8,1],"datatype":"FP32","data":'
        + data
        + b"}]"
        + extra
        + b"}"
    )


HOSTILE_BODIES = [
    ("deep array nesting", b"[" * 100_000 + b"]" * 100_000, "deeper than 1024 levels"),
    ("deep object nesting", b'{"a":' * 5000 + b"1" + b"}" * 5000, "deeper than 1024 levels"),
    ("deeply nested id", _with_data(b"[" + FLOATS + b"]", extra=b',"id":' + b"[" * 900 + b"]" * 900), "'id' must be a string"),
    ("id too deep to parse", _with_data(b"[" + FLOATS + b"]", extra=b',"id":' + b"[" * 2000 + b"]" * 2000), "deeper than 1024 levels"),
    ("numeric id", _with_data(b"[" + FLOATS + b"]", extra=b',"id":7'), "'id' must be a string, got 7"),
    ("integer of 5,000 digits", _with_data(b"[" + b"7" * 5000 + b"]"), "an integer has too many digits"),
    ("integer of 4,000 digits", _with_data(b"[" + b"7" * 4000 + b"," + FLOATS[2:] + b"]"), "int too large to convert to float"),
    ("shape nested 900 deep", b'{"inputs":[{"name":"image","datatype":"FP32","data":[],"shape":' + b"[" * 900 + b"]" * 900 + b"}]}", "'shape' must be a list of non-negative integers, got [[[[...]]]]"),
    ("BYTES data nested 1000 deep", b'{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","data":' + b"[" * 1000 + b"]" * 1000 + b"}]}", "nested too deeply"),
    ("data nested wrongly", _with_data(b"[[" + FLOATS + b"]]"), "send it flat or nested like the shape"),
    ("booleans among numbers", _with_data(b"[true," + FLOATS[2:] + b"]"), "mixes true/false with numbers"),
    ("null outputs", _with_data(b"[" + FLOATS + b"]", extra=b',"outputs":null'), "'outputs' must be a list"),
    ("binary_data_output not a boolean", _with_data(b"[" + FLOATS + b"]", extra=b',"parameters":{"binary_data_output":"yes"}'), "must be true or false"),
    ("invalid UTF-8", b'{"inputs":"\xff\xfe"}', "not valid JSON"),
    ("empty inputs", b'{"inputs":[]}', "non-empty 'inputs'"),
]  # fmt: skip


@pytest.fixture(scope="module")
def server(digits_artifacts):
    with running_server(digits_artifacts["tflite"], max_body_bytes=8_000_000) as running:
        yield running


@pytest.mark.parametrize(
    ("body", "reason"), [c[1:] for c in HOSTILE_BODIES], ids=[c[0] for c in HOSTILE_BODIES]
)
def test_hostile_json_gets_a_4xx_with_the_reason(server, body, reason):  # fmt: skip
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        response = client.post(INFER, content=body, headers=JSON)
        assert_refused_with_reason(response)
        assert reason in response.json()["error"], response.json()
        assert_serves(client)


def test_wrong_content_types_and_lengths_get_a_4xx(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for content_type in ("text/plain", "multipart/form-data; boundary=x", "image/png", "*/*"):
            response = client.post(INFER, content=b"{}", headers={"content-type": content_type})
            assert response.status_code == 415, content_type
            assert_refused_with_reason(response)
        response = client.post(PREDICT, content=b"<x/>", headers={"content-type": "text/xml"})
        assert response.status_code == 400 and "unsupported content type" in response.text
        response = client.post(PREDICT, content=b'"hello"', headers=JSON)
        assert response.status_code == 400 and '{\\"pixels\\"' in response.text
        body, headers = binary_request(1)
        headers["Inference-Header-Content-Length"] = "1" * 5000
        response = client.post(INFER, content=body, headers=headers)
        assert_refused_with_reason(response)
        assert_serves(client)


def test_a_websocket_upgrade_gets_a_400_with_a_reason(server):
    request = (
        "GET /v2/models/digits/infer HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request.encode())
        answer = b""
        while b"}" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert b"WebSocket is not served here" in body and b"Upgrade: websocket" in body
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        assert_serves(client)
        metrics = client.get("/metrics").text
    assert 'tf2aif_requests_total{endpoint="websocket",status="400"}' in metrics


def test_decompression_bombs_are_refused_before_decoding(server):
    """Headers claiming 400M and 20M pixels (over the default 4096x4096 budget): 413 in
    milliseconds, and the server's resident memory does not grow by the decoded size."""
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        before = rss_mib(server.process.pid)
        for width, height, mode in ((20_000, 20_000, 0), (5_000, 4_000, 6), (65_535, 65_535, 2)):
            started = time.perf_counter()
            response = client.post(
                PREDICT, content=png_claiming(width, height, mode=mode), headers={"content-type": "image/png"}
            )  # fmt: skip
            assert response.status_code == 413, response.text
            error = response.json()["error"]
            assert f"{width * height} pixels, over the budget of 16777216" in error
            assert "--max-image-pixels (env TF2AIF_MAX_IMAGE_PIXELS)" in error
            assert time.perf_counter() - started < 2
        grown = rss_mib(server.process.pid) - before
        assert grown < 50, f"resident memory grew by {grown:.0f} MiB"
        ok = client.post(PREDICT, content=real_png(64, 64), headers={"content-type": "image/png"})
        assert ok.status_code == 200 and "digit" in ok.json()


def test_the_pixel_budget_is_an_option(digits_artifacts):
    """--max-image-pixels 1000: a 64x64 image (4096 pixels) is over it, a 16x16 one is not."""
    with running_server(digits_artifacts["tflite"], max_image_pixels=1000) as small:
        url = small.url + PREDICT
        over = httpx.post(url, content=real_png(64, 64), headers={"content-type": "image/png"})
        assert over.status_code == 413
        assert "4096 pixels, over the budget of 1000" in over.json()["error"]
        within = httpx.post(url, content=real_png(16, 16), headers={"content-type": "image/png"})
        assert within.status_code == 200, within.text


def test_oversized_batches_do_not_leave_interpreters_behind(server):
    """Batches over --max-batch-size run on an interpreter of their own, freed afterwards: twelve
    distinct oversized shapes (each interpreter ~25 MiB of activations) leave memory flat."""
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        body, headers = binary_request(2000)
        assert client.post(INFER, content=body, headers=headers).status_code == 200
        before = rss_mib(server.process.pid)
        for rows in range(2001, 2013):
            body, headers = binary_request(rows)
            response = client.post(INFER, content=body, headers=headers)
            assert response.status_code == 200, response.text
        grown = rss_mib(server.process.pid) - before
        assert grown < 60, f"resident memory grew by {grown:.0f} MiB over 12 oversized shapes"
        assert_serves(client)


def test_tflite_keeps_interpreters_only_for_batches_it_will_see_again(digits_artifacts):
    directory = digits_artifacts["tflite"]
    backend = create_backend(read_artifact(directory), directory, BackendSettings(max_batch_size=4))
    backend.load()
    backend.warm_up()
    buckets = [(rows, 8, 8, 1) for rows in (1, 2, 4)]
    assert backend.kept_shapes() == buckets
    for rows in range(5, 40):  # over the largest batch: a fresh interpreter each time, not kept
        out = backend.run({"image": np.zeros((rows, 8, 8, 1), np.float32)})
        assert out["output_0"].shape == (rows, 10)
    assert backend.kept_shapes() == buckets
    backend.MAX_INTERPRETERS_PER_THREAD = 2
    backend.run({"image": np.zeros((1, 8, 8, 1), np.float32)})  # now the most recently used
    backend.infer({"image": np.zeros((3, 8, 8, 1), np.float32)})  # a new shape: LRU out
    assert backend.kept_shapes() == [(1, 8, 8, 1), (3, 8, 8, 1)]


def test_request_bodies_are_bounded(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        response = client.post(INFER, json=valid_request(rows=4000))  # ~5 MB of JSON: within
        assert response.status_code == 200
        response = client.post(INFER, content=b"[" * 8_000_001, headers=JSON)
        assert response.status_code == 413 and "over the 8000000-byte limit" in response.text
        assert_serves(client)

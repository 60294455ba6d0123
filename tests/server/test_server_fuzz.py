"""Generated requests against the real server (TFLite digits): OIP v2 JSON bodies, binary-extension
bodies, raw /predict payloads and arbitrary HTTP requests.

Invariants, for every generated request: the answer is 2xx, or 4xx with a JSON reason; never a
5xx, never a hang (a timeout fails the test); the server answers a valid request right after;
and its resident memory stays within MEMORY_BOUND_MIB of where the test started.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tf2aif.image.server.protocol import DATATYPES

from .hostile import (
    INFER,
    PREDICT,
    TIMEOUT,
    assert_refused_with_reason,
    assert_serves,
    png_claiming,
    rss_mib,
)
from .serving import running_server

pytestmark = [pytest.mark.conversion, pytest.mark.fuzz]

MAX_BODY = 2_000_000
MEMORY_BOUND_MIB = 150
per_test_fixture = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def server(digits_artifacts):
    with running_server(digits_artifacts["tflite"], max_body_bytes=MAX_BODY) as running:
        with httpx.Client(base_url=running.url, timeout=TIMEOUT) as client:
            for _ in range(20):  # warm: allocator pools, first-request imports
                assert_serves(client)
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as session:
        yield session


@pytest.fixture
def bounded_memory(server):
    """Resident memory after all of a test's examples stays near where it started."""
    before = rss_mib(server.process.pid)
    yield
    grown = rss_mib(server.process.pid) - before
    assert grown < MEMORY_BOUND_MIB, f"server resident memory grew by {grown:.0f} MiB"


def _check(response: httpx.Response) -> None:
    event(f"status {response.status_code}")  # in --hypothesis-show-statistics
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert_refused_with_reason(response)
    else:
        assert 200 <= response.status_code < 300, response.status_code


# ---- strategies -------------------------------------------------------------------------------

DEEP = "\u2062deep"  # placeholders replaced in the serialized text (JSON cannot build them)
BIG = "\u2062big"

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(width=64)
    | st.text(max_size=6)
    | st.sampled_from([DEEP, BIG])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def mostly(valid: st.SearchStrategy, other: st.SearchStrategy) -> st.SearchStrategy:
    """`valid` seven times in eight, else `other`: most requests are a mutation or two away from
    valid, so they reach the deep checks (and some are valid), not only the JSON parser."""
    return st.integers(0, 7).flatmap(lambda k: valid if k else other)


names = mostly(
    st.just("image"), st.sampled_from(["imagee", "IMAGE", "", "output_0"]) | st.text(max_size=8)
)
datatypes = mostly(st.just("FP32"), st.sampled_from([*DATATYPES, "fp32", "FP33", "float32"]))
rows = st.integers(min_value=0, max_value=40)
numbers = mostly(
    st.floats(min_value=-1e6, max_value=1e6) | st.integers(min_value=-(2**65), max_value=2**65),
    st.sampled_from([float("nan"), float("inf"), 3.5e38, True, "1", None]),
)


@st.composite
def shapes_and_data(draw):
    """Mostly the model's [n, 8, 8, 1] with the right number of values, sometimes not."""
    n = draw(rows)
    shape = draw(
        mostly(
            st.just([n, 8, 8, 1]),
            st.lists(st.integers(min_value=-3, max_value=2**66), max_size=5) | json_values,
        )
    )
    count = max(n * 64 + draw(mostly(st.just(0), st.sampled_from([-1, 1]))), 0)
    value = draw(numbers)
    flat = [draw(numbers) if i < 3 else value for i in range(count)]
    nested = [
        [[[v] for v in flat[r * 64 + c * 8 : r * 64 + c * 8 + 8]] for c in range(8)]
        for r in range(n)
    ]
    data = draw(mostly(st.sampled_from([flat, flat, nested]), st.just([flat]) | json_values))
    return shape, data, count * 4


@st.composite
def input_entries(draw, binary: bool):
    shape, data, size = draw(shapes_and_data())
    entry = {"name": draw(names), "datatype": draw(datatypes), "shape": shape}
    if binary:
        entry["parameters"] = {
            "binary_data_size": draw(mostly(st.just(size), st.integers(-2, 40 * 256) | json_values))
        }
    elif draw(st.integers(0, 15)):
        entry["data"] = data
    if draw(st.integers(0, 7)) == 0:
        entry[draw(st.sampled_from(["parameters", "extra", "name", "shape"]))] = draw(json_values)
    return entry


@st.composite
def infer_documents(draw, binary: bool = False):
    one = st.lists(input_entries(binary), min_size=1, max_size=1)
    document = {
        "inputs": draw(mostly(one, st.lists(input_entries(binary), max_size=2) | json_values))
    }
    if draw(st.booleans()):
        document["id"] = draw(mostly(st.text(max_size=10), json_values))
    if draw(st.booleans()):
        flag = draw(mostly(st.booleans(), json_values))
        document["parameters"] = draw(mostly(st.just({"binary_data_output": flag}), json_values))
    if draw(st.booleans()):
        output = {
            "name": draw(mostly(st.just("output_0"), names)),
            "parameters": {"binary_data": draw(mostly(st.booleans(), json_values))},
        }
        document["outputs"] = draw(mostly(st.sampled_from([[output], []]), json_values))
    if draw(st.integers(0, 15)) == 0:
        return draw(json_values)
    return document


def _serialize(document, draw) -> bytes:
    text = json.dumps(document)  # NaN/Infinity literals included, as clients may send them
    depth = draw(st.integers(min_value=1, max_value=5000))
    text = text.replace(json.dumps(DEEP), "[" * depth + "]" * depth)
    text = text.replace(json.dumps(BIG), "9" * draw(st.integers(min_value=18, max_value=6000)))
    body = text.encode()
    cut = draw(mostly(st.none(), st.sampled_from(["truncate", "flip"])))
    if cut == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif cut == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    return body


@st.composite
def json_requests(draw):
    body = _serialize(draw(infer_documents()), draw)
    content_type = draw(
        st.sampled_from(["application/json", "application/json; charset=utf-8", None])
    )
    return body, {"content-type": content_type} if content_type else {}


def _binary_sizes(document) -> int:
    """The tensor bytes a generated header asks for (0 when it is not well formed)."""
    try:
        sizes = [entry["parameters"]["binary_data_size"] for entry in document["inputs"]]
    except (KeyError, TypeError):
        return 0
    fine = all(type(size) is int and 0 <= size <= MAX_BODY for size in sizes)
    return sum(sizes) if fine else 0


@st.composite
def binary_requests(draw):
    document = draw(infer_documents(binary=True))
    header = _serialize(document, draw)
    tail = draw(mostly(st.just(bytes(_binary_sizes(document))), st.binary(max_size=64)))
    body = header + tail
    length = draw(
        mostly(
            st.just(str(len(header))),
            st.integers(-5, len(body) + 5).map(str)
            | st.sampled_from(["", "x", "1e3", "9" * 5000, "\u00b2"]),
        )
    )
    headers = {
        "content-type": "application/octet-stream",
        "Inference-Header-Content-Length": length.encode("latin-1"),  # bytes: any octet goes
    }
    encoding = draw(mostly(st.none(), st.sampled_from(["gzip", "deflate", "br", "gzip-garbage"])))
    if encoding == "gzip":
        body = gzip.compress(body)
    elif encoding == "deflate":
        body = zlib.compress(body)
    elif encoding == "gzip-garbage":
        encoding = "gzip"
    if encoding:
        headers["content-encoding"] = encoding
    return body, headers


@st.composite
def images(draw):
    from PIL import Image

    width, height = draw(st.integers(1, 96)), draw(st.integers(1, 96))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "P", "1", "I;16"]))
    picture = Image.new(mode, (width, height), draw(st.integers(0, 255)))
    buffer = io.BytesIO()
    kind = draw(st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"]))
    if kind == "JPEG" and mode not in ("L", "RGB"):
        picture = picture.convert("RGB")
    try:
        picture.save(buffer, format=kind)
    except (OSError, KeyError, ValueError):  # a mode this format cannot hold (I;16 as BMP)
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, format=kind)
    data = buffer.getvalue()
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data, f"image/{kind.lower()}"


@st.composite
def predict_payloads(draw):
    kind = draw(st.sampled_from(["image", "bomb", "pixels", "json", "bytes"]))
    content_type = draw(
        st.sampled_from(
            ["image/png", "image/jpeg", "application/json", "text/plain", "", "image/x"]
        )
    )
    if kind == "image":
        data, content_type = draw(images())
    elif kind == "bomb":
        width, height = draw(st.integers(1, 65535)), draw(st.integers(1, 65535))
        data = png_claiming(width, height, mode=draw(st.sampled_from([0, 2, 4, 6])))
        content_type = "image/png"
    elif kind == "pixels":
        cell = st.floats(min_value=-1, max_value=17) | st.integers(-1, 17) | json_values
        side = draw(st.sampled_from([8, 8, 8, 7, 9]))
        grid = draw(
            st.lists(st.lists(cell, min_size=side, max_size=side), min_size=side, max_size=side)
        )
        data = _serialize({"pixels": grid}, draw)
        content_type = "application/json"
    elif kind == "json":
        data = _serialize(draw(json_values), draw)
    else:
        data = draw(st.binary(max_size=300))
    return data, {"content-type": content_type} if content_type else {}


@st.composite
def http_requests(draw):
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
    model = draw(st.sampled_from(["digits", "digits", "mnist", "", "..", "%2e%2e"]))
    suffix = draw(
        st.sampled_from(
            [
                "",
                "/infer",
                "/predict",
                "/ready",
                "/config",
                "/versions/1/infer",
                "/versions/2/infer",
                "/x",
            ]
        )
    )
    path = draw(
        st.sampled_from([f"/v2/models/{model}{suffix}", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/repository/index", "/metrics", "/openapi.json", "/docs", "/", "/v2/models"])
    )  # fmt: skip
    header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(
        str.strip
    )
    headers = draw(
        st.dictionaries(
            st.sampled_from(["content-type", "content-encoding", "accept", "expect", "x-anything", "inference-header-content-length", "transfer-encoding-x"]),
            header_text,
            max_size=3,
        )
    )  # fmt: skip
    if draw(st.integers(0, 4)) == 0:
        headers |= {"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
    body = draw(st.binary(max_size=100) | st.just(b""))
    return method, path, headers, body if method not in ("GET", "HEAD") else b""


# ---- targets ----------------------------------------------------------------------------------


@per_test_fixture
@given(request=json_requests())
def test_generated_json_infer_requests(client, bounded_memory, request):
    body, headers = request
    _check(client.post(INFER, content=body, headers=headers))
    assert_serves(client)


@per_test_fixture
@given(request=binary_requests())
def test_generated_binary_infer_requests(client, bounded_memory, request):
    body, headers = request
    response = client.post(INFER, content=body, headers=headers)
    _check(response)
    if response.status_code == 200 and "inference-header-content-length" in response.headers:
        header_length = int(response.headers["inference-header-content-length"])
        assert json.loads(response.content[:header_length])["outputs"]
    assert_serves(client)


@per_test_fixture
@given(payload=predict_payloads())
def test_generated_predict_payloads(client, bounded_memory, payload):
    body, headers = payload
    response = client.post(PREDICT, content=body, headers=headers)
    _check(response)
    if response.status_code == 200:
        assert 0 <= response.json()["digit"] <= 9
    assert_serves(client)


@per_test_fixture
@given(request=http_requests())
def test_generated_http_requests(client, bounded_memory, request):
    method, path, headers, body = request
    response = client.request(method, path, headers=headers, content=body)
    event(f"status {response.status_code}")
    assert response.status_code < 500, (method, path, headers, response.text[:300])
    if response.status_code >= 400 and method != "HEAD":
        if response.headers.get("content-type", "").startswith("application/json"):
            assert response.json()["error"]
        else:  # a broken WebSocket handshake, refused by the HTTP layer before the app
            assert response.text.strip(), (method, path, headers)
    assert_serves(client)

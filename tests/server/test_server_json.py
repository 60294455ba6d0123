"""JSON goes through orjson when it is installed; what it cannot do falls back to the standard
library, so answers stay the same either way."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tf2aif.image.artifact import TensorSpec
from tf2aif.image.server import protocol
from tf2aif.image.server.errors import ApiError
from tf2aif.image.server.protocol import InferRequest, encode_infer_response, parse_infer_request

PROBS = TensorSpec(name="probs", datatype="FP32", shape=(-1, 3))


@pytest.fixture(params=["orjson", "json"], autouse=True)
def json_library(request, monkeypatch):
    """Every test runs with orjson (when installed) and with the standard library alone."""
    if request.param == "orjson":
        pytest.importorskip("orjson")
    else:
        monkeypatch.setattr(protocol, "orjson", None)
    return request.param


def _request(data: str, datatype: str = "FP32") -> bytes:
    return (
        f'{{"inputs":[{{"name":"x","shape":[1,2],"datatype":"{datatype}","data":{data}}}]}}'
    ).encode()


def test_nan_literals_still_parse_and_reach_the_nonfinite_check():
    parsed = parse_infer_request(_request("[NaN, 1.0]"))  # orjson refuses NaN; json reads it
    assert np.isnan(parsed.inputs["x"][0, 0])


def test_integers_past_64_bits_are_refused_for_integer_tensors():
    with pytest.raises(ApiError) as error:  # orjson reads them as floats, json as big ints
        parse_infer_request(_request(f"[{2**70}, 1]", "INT64"))
    assert error.value.message.startswith("input 'x': 'data' does not hold int64 values: found")


def test_broken_json_gets_the_standard_library_wording():
    with pytest.raises(ApiError) as error:
        parse_infer_request(b'{"inputs": [')
    assert error.value.message.startswith("request body is not valid JSON: Expecting value")


def _encoded(outputs: np.ndarray) -> dict:
    request = InferRequest(id="7", inputs={}, outputs=(), binary_output=False)
    body, header_length = encode_infer_response(
        model_name="m",
        model_version="1",
        request=request,
        outputs={"probs": outputs},
        specs=[PROBS],
    )
    assert header_length is None
    return json.loads(body)


def test_float32_outputs_come_back_bit_exact():
    outputs = np.random.default_rng(3).random((4, 3), dtype=np.float32) / 7
    document = _encoded(outputs)
    assert document["id"] == "7"
    decoded = np.array(document["outputs"][0]["data"], dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(decoded, outputs)


def test_nonfinite_outputs_are_written_as_nan_and_infinity_not_null():
    outputs = np.array([[np.nan, np.inf, 1.0]], dtype=np.float32)
    data = _encoded(outputs)["outputs"][0]["data"]
    assert np.isnan(data[0]) and data[1] == float("inf") and data[2] == 1.0


def test_dumps_writes_numpy_values_either_way():
    document = {"a": np.arange(3, dtype=np.int32), "b": np.float16(0.5), "c": [1, "x"]}
    assert json.loads(protocol.dumps(document)) == {"a": [0, 1, 2], "b": 0.5, "c": [1, "x"]}


def test_only_slow_parsing_and_encoding_leave_the_event_loop():
    from tf2aif.image.server.app import _json_values, _parse_is_slow
    from tf2aif.image.server.protocol import RequestedOutput

    image = bytes(600_000)  # a 224x224x3 float32 tensor, in binary after a small JSON header
    assert not _parse_is_slow(b"{}" + image, 2)  # binary: a view of the bytes, no parsing
    assert _parse_is_slow(b" " * 70_000, None)  # 70 kB of JSON text
    assert _parse_is_slow(bytes(5 << 20), 100)  # 5 MiB to scan for NaN

    outputs = {"probs": np.zeros((1, 1000), np.float32), "big": np.zeros((1, 20_000), np.float32)}

    def request(binary_output: bool, *wanted: RequestedOutput) -> InferRequest:
        return InferRequest(id=None, inputs={}, outputs=wanted, binary_output=binary_output)

    assert _json_values(request(True), outputs) == 0
    assert _json_values(request(False), outputs) == 21_000
    only_big_in_json = (
        RequestedOutput(name="probs", binary=False),
        RequestedOutput(name="big", binary=True),
    )
    assert _json_values(request(False, *only_big_in_json), outputs) == 1000

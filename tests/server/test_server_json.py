"""JSON goes through orjson when it is installed; what it cannot do falls back to the standard
library, so answers stay the same either way."""

from __future__ import annotations

import json

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from tf2aif.image.artifact import TensorSpec
from tf2aif.image.server import protocol
from tf2aif.image.server.errors import ApiError
from tf2aif.image.server.protocol import InferRequest, encode_infer_response, parse_infer_request

PROBS = TensorSpec(name="probs", datatype="FP32", shape=(-1, 3))
PROBS_IN = TensorSpec(name="x", datatype="FP32", shape=(-1, 2))


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


def _encoded(outputs: np.ndarray, spec: TensorSpec = PROBS) -> dict:
    """The JSON answer for one output, parsed as strict JSON (a bare NaN fails)."""
    request = InferRequest(id="7", inputs={}, outputs=(), binary_output=False)
    body, header_length = encode_infer_response(
        model_name="m",
        model_version="1",
        request=request,
        outputs={spec.name: outputs},
        specs=[spec],
    )
    assert header_length is None
    return _strict(body)


def _strict(body: bytes) -> dict:
    def refuse(word):
        raise ValueError(f"{word} is not JSON")

    return json.loads(body, parse_constant=refuse)


def test_float32_outputs_come_back_bit_exact():
    outputs = np.random.default_rng(3).random((4, 3), dtype=np.float32) / 7
    document = _encoded(outputs)
    assert document["id"] == "7"
    decoded = np.array(document["outputs"][0]["data"], dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(decoded, outputs)


def test_nonfinite_outputs_are_written_as_proto3_json_words():
    outputs = np.array([[np.nan, np.inf, -np.inf]], dtype=np.float32)
    data = _encoded(outputs)["outputs"][0]["data"]
    assert data == ["NaN", "Infinity", "-Infinity"]
    decoded = np.array(data, dtype=np.float32)  # how tritonclient reads a JSON output
    np.testing.assert_array_equal(decoded, outputs.reshape(-1))


@pytest.mark.fuzz
@given(
    values=hnp.arrays(
        dtype=st.sampled_from([np.float16, np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
    )
)
def test_every_float_output_is_strict_json_that_reads_back_exactly(values):
    spec = TensorSpec(name="y", datatype=protocol._oip_name(values.dtype), shape=values.shape)
    entry = _encoded(values, spec)["outputs"][0]
    assert entry["shape"] == list(values.shape)
    decoded = np.array(entry["data"], dtype=values.dtype).reshape(values.shape)
    np.testing.assert_array_equal(decoded, values)  # NaN equals NaN here


@pytest.mark.parametrize("words", ['["NaN", 1.0]', '["Infinity", "-Infinity"]'])
def test_nonfinite_words_in_requests_meet_the_nonfinite_check(words):
    parsed = parse_infer_request(_request(words))
    with pytest.raises(ApiError) as error:
        protocol.check_inputs(parsed.inputs, [PROBS_IN], allow_nonfinite=False)
    assert "NaN or Inf" in error.value.message
    protocol.check_inputs(parsed.inputs, [PROBS_IN], allow_nonfinite=True)


def test_other_strings_in_float_data_are_still_refused():
    with pytest.raises(ApiError) as error:
        parse_infer_request(_request('["nan", 1.0]'))
    assert "does not hold float32 values" in error.value.message


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


def test_plugin_answers_with_nan_become_strict_json():
    answer = {
        "label": "cat",
        "score": np.float32("nan"),
        "top": [np.inf, 1.5],
        "x": np.array([[-np.inf]]),
    }
    safe = protocol.json_safe(answer)
    assert _strict(json.dumps(safe, allow_nan=False).encode()) == {
        "label": "cat",
        "score": "NaN",
        "top": ["Infinity", 1.5],
        "x": [["-Infinity"]],
    }

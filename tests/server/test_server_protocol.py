"""OIP request parsing and response encoding, checked against tritonclient's own encoder/decoder."""

from __future__ import annotations

import json

import hypothesis.strategies as st
import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import given

from tf2aif.image.artifact import TensorSpec
from tf2aif.image.server.errors import ApiError
from tf2aif.image.server.protocol import (
    DATATYPES,
    InferRequest,
    RequestedOutput,
    check_inputs,
    check_outputs,
    encode_infer_response,
    parse_infer_request,
)

IMAGE = TensorSpec(name="image", datatype="FP32", shape=(-1, 8, 8, 1))
MASK = TensorSpec(name="mask", datatype="BOOL", shape=(-1, 4))
PROBS = TensorSpec(name="probs", datatype="FP32", shape=(-1, 10))
TOKENS = TensorSpec(name="tokens", datatype="BYTES", shape=(-1,))
Client = triton.InferenceServerClient


def _triton_input(name: str, array: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_requests_parse_to_the_same_arrays(binary):
    image = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    mask = np.array([[True, False, True, True]] * 3)
    tokens = np.array([b"a", b"bc", b""], dtype=np.object_)
    inputs = [
        _triton_input("image", image, "FP32", binary),
        _triton_input("mask", mask, "BOOL", binary),
        _triton_input("tokens", tokens, "BYTES", binary),
    ]
    outputs = [triton.InferRequestedOutput("probs", binary_data=binary)]
    body, header_length = Client.generate_request_body(inputs, outputs=outputs, request_id="r1")
    request = parse_infer_request(body, header_length)
    assert request.id == "r1"
    np.testing.assert_array_equal(request.inputs["image"], image)
    np.testing.assert_array_equal(request.inputs["mask"], mask)
    assert list(request.inputs["tokens"]) == [b"a", b"bc", b""]
    assert request.outputs == (RequestedOutput(name="probs", binary=binary),)
    check_inputs({"image": request.inputs["image"]}, [IMAGE])


def test_no_requested_outputs_means_all_binary_for_tritonclient():
    image = np.zeros((1, 8, 8, 1), np.float32)
    body, header_length = Client.generate_request_body(
        [_triton_input("image", image, "FP32", True)]
    )
    request = parse_infer_request(body, header_length)
    assert request.outputs == () and request.binary_output is True


@pytest.mark.parametrize("binary", [True, False])
def test_responses_decode_with_tritonclient(binary):
    probs = np.random.default_rng(1).random((2, 10), dtype=np.float32)
    request = InferRequest(
        id="abc",
        inputs={},
        outputs=(RequestedOutput(name="probs", binary=binary),),
        binary_output=False,
    )
    body, header_length = encode_infer_response(
        model_name="digits",
        model_version="1",
        request=request,
        outputs={"probs": probs},
        specs=[PROBS],
    )
    assert (header_length is not None) == binary
    result = Client.parse_response_body(body, header_length=header_length)
    np.testing.assert_array_equal(result.as_numpy("probs"), probs)
    assert result.get_response()["id"] == "abc"
    assert result.get_response()["model_name"] == "digits"


def test_bytes_outputs_round_trip_in_binary():
    request = InferRequest(id=None, inputs={}, outputs=(), binary_output=True)
    words = np.array([b"one", b"", b"three"], dtype=np.object_)
    body, header_length = encode_infer_response(
        model_name="m",
        model_version="1",
        request=request,
        outputs={"tokens": words},
        specs=[TOKENS],
    )
    result = Client.parse_response_body(body, header_length=header_length)
    assert list(result.as_numpy("tokens")) == [b"one", b"", b"three"]


def test_nested_json_data_is_accepted():
    document = {
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [[1, 2], [3, 4]]}]
    }
    request = parse_infer_request(json.dumps(document).encode())
    np.testing.assert_array_equal(request.inputs["x"], np.array([[1, 2], [3, 4]], np.int32))
    assert request.inputs["x"].dtype == np.int32


def _error(body: bytes | dict, header_length: int | None = None) -> str:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    with pytest.raises(ApiError) as caught:
        parse_infer_request(raw, header_length)
    assert caught.value.status == 400
    return caught.value.message


def _one(**fields) -> dict:
    tensor = {"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]} | fields
    return {"inputs": [tensor]}


def test_request_errors_say_what_is_wrong():
    assert _error(b"[1, 2]") == "request body must be a JSON object with an 'inputs' list"
    assert _error(b"\xff\xfe").startswith("request body is not valid JSON")
    assert _error({"inputs": {}}) == "request needs a non-empty 'inputs' list"
    assert (
        _error(_one(shape=[2.5]))
        == "input 'x': 'shape' must be a list of non-negative integers, got [2.5]"
    )
    assert _error(_one(datatype="FP33")).startswith(
        "unknown datatype 'FP33' (did you mean \"FP32\"?)"
    )
    assert _error(_one(data=[1.5, 2.5], datatype="INT32")) == (
        "input 'x': 'data' does not hold int32 values: found float64 values"
    )
    assert _error(_one(data=[1, 300], datatype="INT8")) == (
        "input 'x': 'data' does not hold int8 values: values outside [-128, 127]"
    )
    assert (
        _error(_one(data=[1.0, None]))
        == "input 'x': 'data' does not hold float32 values: found object values"
    )
    assert _error(_one(data=[[1.0], [2.0, 3.0]])).startswith(
        "input 'x': 'data' does not hold float32 values"
    )
    assert _error(_one(data=[1.0])) == "input 'x': shape [2] needs 2 values, 'data' has 1"
    assert _error({"inputs": [_one()["inputs"][0]] * 2}) == "input 'x' is given twice"
    assert _error({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}) == (
        "input 'x' has neither 'data' nor parameters.binary_data_size"
    )
    assert _error({**_one(), "outputs": [{"name": "y", "parameters": {"classification": 3}}]}) == (
        "the classification extension is not supported; ask for the raw output"
    )


def test_binary_framing_errors():
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    ).encode()
    data = np.array([1, 2], np.float32).tobytes()
    assert parse_infer_request(header + data, len(header)).inputs["x"].tolist() == [1.0, 2.0]
    assert _error(header + data + b"xx", len(header)) == (
        "binary data is 10 bytes but the inputs' binary_data_size add up to 8"
    )
    assert _error(header + data[:4], len(header)) == (
        "input 'x': binary_data_size 8 runs past the end of the body (4 bytes left)"
    )
    assert _error(header + data, len(header) + 100) == (
        f"Inference-Header-Content-Length is {len(header) + 100} but the body has {len(header) + 8} bytes"
    )
    assert _error(header[:-3], len(header) - 3).startswith("request body is not valid JSON")


def test_check_inputs_against_the_model():
    image = np.zeros((2, 8, 8, 1), np.float32)
    mask = np.zeros((2, 4), bool)
    check_inputs({"image": image, "mask": mask}, [IMAGE, MASK])

    def message(inputs, allow_nonfinite=False) -> str:
        with pytest.raises(ApiError) as caught:
            check_inputs(inputs, [IMAGE, MASK], allow_nonfinite=allow_nonfinite)
        return caught.value.message

    assert message({"image": image}) == "missing input(s): mask"
    assert message({"image": image, "mask": mask, "maks": mask}) == (
        "unknown input 'maks' (did you mean \"mask\"?); the model's inputs are: image, mask"
    )
    assert message({"image": image.astype(np.float16), "mask": mask}) == (
        "input 'image': datatype FP16 given, the model takes FP32"
    )
    assert message({"image": image[:, :4], "mask": mask}) == (
        "input 'image': shape [2, 4, 8, 1] does not fit the model's [-1, 8, 8, 1] (-1: any size)"
    )
    assert message({"image": image, "mask": mask[:1]}) == (
        "inputs disagree on the batch size (dim 0): [1, 2]"
    )
    bad = image.copy()
    bad[0, 0, 0, 0] = np.inf
    assert message({"image": bad, "mask": mask}) == "input 'image' holds NaN or Inf values"
    check_inputs({"image": bad, "mask": mask}, [IMAGE, MASK], allow_nonfinite=True)


def test_check_outputs_names_the_choices():
    check_outputs([RequestedOutput(name="probs", binary=True)], [PROBS])
    with pytest.raises(ApiError, match=r"unknown output 'prob' \(did you mean \"probs\"\?\)"):
        check_outputs([RequestedOutput(name="prob", binary=True)], [PROBS])


@pytest.mark.fuzz
@given(
    shape=st.lists(
        st.one_of(st.integers(0, 4), st.integers(0, 2**70), st.just(0)), min_size=0, max_size=6
    ),
    datatype=st.sampled_from(sorted(DATATYPES)),
    values=st.integers(0, 3),
)
def test_any_declared_shape_parses_or_gets_a_400(shape, datatype, values):
    """Zero-size shapes escape the value-count check; numpy must still be able to shape them."""
    document = {
        "inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": [1] * values}]
    }
    try:
        request = parse_infer_request(json.dumps(document).encode())
    except ApiError as error:
        assert error.status == 400 and error.message.startswith("input 'x'")
    else:
        assert request.inputs["x"].shape == tuple(shape)

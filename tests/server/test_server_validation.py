"""Request validation in process (no server, no model): hostile bodies give ApiError(400) with a
reason and nothing else escapes; the demo processing module refuses bombs before decoding; the
OpenAPI document's tensor schemas agree with what the parser accepts."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import jsonschema_rs  # schemathesis's validator: the Python one takes seconds on 33 branches
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.image.artifact import TensorSpec
from tf2aif.image.server import openapi
from tf2aif.image.server.errors import ApiError
from tf2aif.image.server.protocol import check_inputs, check_outputs, parse_infer_request

from .hostile import png_claiming, real_png

REPO = Path(__file__).resolve().parents[2]
IMAGE = TensorSpec(name="image", datatype="FP32", shape=(-1, 8, 8, 1))


def _processing():
    spec = importlib.util.spec_from_file_location("demo_processing", REPO / "app" / "processing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _refusal(body: bytes, header_length: int | None = None) -> str:
    with pytest.raises(ApiError) as caught:
        parse_infer_request(body, header_length)
    assert caught.value.status == 400
    return caught.value.message


def _request(data: str, extra: str = "") -> bytes:
    head = '{"inputs":[{"name":"image","shape":[1,8,8,1],"datatype":"FP32","data":'
    return f"{head}{data}}}]{extra}}}".encode()


ZEROS = "[" + ",".join(["0"] * 64) + "]"


def test_hostile_bodies_are_refused_with_reasons():
    assert "deeper than 1024 levels" in _refusal(b"[" * 50_000 + b"]" * 50_000)
    assert "too many digits" in _refusal(_request("[" + "1" * 5000 + "]"))
    assert _refusal(_request(ZEROS, ',"id":' + "[" * 500 + "]" * 500)) == (
        "'id' must be a string, got [[[[...]]]]"
    )
    assert "'id' must be a string, got None" in _refusal(_request(ZEROS, ',"id":null'))
    assert "'outputs' must be a list" in _refusal(_request(ZEROS, ',"outputs":null'))
    assert "must be true or false, got 'yes'" in _refusal(
        _request(ZEROS, ',"parameters":{"binary_data_output":"yes"}')
    )
    assert "mixes true/false with numbers" in _refusal(_request("[true" + ZEROS[2:]))
    assert "nested as [1, 64]" in _refusal(_request("[" + ZEROS + "]"))
    nested_bytes = b'{"inputs":[{"name":"b","shape":[1],"datatype":"BYTES","data":'
    assert "nested too deeply" in _refusal(nested_bytes + b"[" * 1000 + b"]" * 1000 + b"}]}")
    sized = _request(ZEROS).replace(b'"data"', b'"parameters":{"binary_data_size":0},"data"')
    assert "belongs to the binary tensor extension" in _refusal(sized)


def test_integers_past_64_bits_fill_float_tensors():
    big = 2**70
    parsed = parse_infer_request(_request("[" + ",".join([str(big)] + ["0"] * 63) + "]"))
    assert parsed.inputs["image"].reshape(-1)[0] == np.float32(big)
    assert "too large to convert to float" in _refusal(_request("[" + "9" * 400 + "]"))


def test_nested_like_the_shape_is_accepted():
    nested = [[[[0.5] for _ in range(8)] for _ in range(8)]]
    parsed = parse_infer_request(json.dumps(_doc(nested, [1, 8, 8, 1])).encode())
    assert parsed.inputs["image"].shape == (1, 8, 8, 1)


class _Model:
    """What openapi.document reads of a ModelServer."""

    name, version, batch_limit, processing = "digits", "1", 32, None

    class info:  # noqa: N801 - ModelServer.info
        runtime, precision = "tflite", "fp32"
        inputs = [IMAGE]
        outputs = [TensorSpec(name="output_0", datatype="FP32", shape=(-1, 10))]


REQUEST_SCHEMA = jsonschema_rs.validator_for(
    openapi.document(_Model)["components"]["schemas"]["InferenceRequest"]
)


def _doc(data, shape) -> dict:
    return {"inputs": [{"name": "image", "shape": shape, "datatype": "FP32", "data": data}]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=16,
)


@pytest.mark.fuzz
@given(document=json_values, as_request=st.booleans(), cut=st.integers(0, 200))
def test_any_json_parses_or_is_refused_with_a_400(document, as_request, cut):
    if as_request:
        document = {"inputs": [{"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": document}]}  # fmt: skip
    body = json.dumps(document).encode()
    for candidate in (body, body[:cut]):
        try:
            parsed = parse_infer_request(candidate)
            check_inputs(parsed.inputs, [IMAGE])
        except ApiError as exc:
            assert exc.status == 400 and exc.message


@pytest.mark.fuzz
@given(rows=st.integers(0, 32), nested=st.booleans(), values=st.data())
def test_what_the_document_calls_valid_the_parser_accepts(rows, nested, values):
    """Requests drawn to satisfy the document's tensor schema validate against it and parse."""

    limit = float(np.finfo(np.float32).max)
    number = st.floats(-limit, limit) | st.integers(-(2**80), 2**80)
    count = rows * 64  # a few drawn values, then one repeated: cheap enough for 10,000 cases
    drawn = values.draw(st.lists(number, min_size=min(count, 4), max_size=min(count, 4)))
    flat = drawn + [values.draw(number)] * (count - len(drawn))
    data = np.array(flat, dtype=object).reshape(rows, 8, 8, 1).tolist() if nested else flat
    document = _doc(data, [rows, 8, 8, 1])
    assert REQUEST_SCHEMA.is_valid(document)
    parsed = parse_infer_request(json.dumps(document).encode())
    check_inputs(parsed.inputs, [IMAGE])
    assert parsed.inputs["image"].shape == (rows, 8, 8, 1)


def test_the_document_rules_out_what_the_parser_refuses():
    refused = [
        {"inputs": []},
        _doc([0.0] * 63, [1, 8, 8, 1]),
        _doc([[0.0] * 64], [1, 8, 8, 1]),
        _doc([True] + [0.0] * 63, [1, 8, 8, 1]),
        _doc([1e39] + [0.0] * 63, [1, 8, 8, 1]),
        {**_doc([0.0] * 64, [1, 8, 8, 1]), "id": 7},
        {**_doc([0.0] * 64, [1, 8, 8, 1]), "outputs": [{"name": "logits"}]},
        {**_doc([0.0] * 64, [1, 8, 8, 1]), "parameters": {"binary_data_output": "yes"}},
    ]
    for document in refused:
        assert not REQUEST_SCHEMA.is_valid(document), document
        with pytest.raises(ApiError):
            parsed = parse_infer_request(json.dumps(document).encode())
            check_inputs(parsed.inputs, [IMAGE])
            check_outputs(parsed.outputs, _Model.info.outputs)


def test_the_demo_module_refuses_bombs_before_decoding():
    from PIL import Image

    processing = _processing()
    started = time.perf_counter()
    with pytest.raises(Image.DecompressionBombError, match="3600000000 pixels"):
        processing.preprocess(png_claiming(60_000, 60_000), "image/png")  # Pillow's own check
    with (
        pytest.warns(Image.DecompressionBombWarning),  # Pillow only warns up to twice its limit
        pytest.raises(Image.DecompressionBombError, match="100000000 pixels is over the"),
    ):
        processing.preprocess(png_claiming(10_000, 10_000), "image/png")
    assert time.perf_counter() - started < 1  # decoding would take seconds and gigabytes
    image = processing.preprocess(real_png(640, 480, shade=0), "image/png")["image"]
    assert image.shape == (1, 8, 8, 1) and image.dtype == np.float32


def test_the_demo_module_says_what_json_it_takes():
    processing = _processing()
    with pytest.raises(ValueError, match=r'send a JSON object \{"pixels"'):
        processing.preprocess(b'"hello"', "application/json")
    with pytest.raises(ValueError, match="within 0..16"):
        processing.preprocess(json.dumps({"pixels": [[17] * 8] * 8}).encode(), "application/json")
    with pytest.raises(ValueError, match="must be numbers"):
        processing.preprocess(json.dumps({"pixels": [[True] * 8] * 8}).encode(), "application/json")
    pixels = processing.preprocess(
        json.dumps({"pixels": [[8] * 8] * 8}).encode(), "application/json"
    )
    assert float(pixels["image"].max()) == 0.5

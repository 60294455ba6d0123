"""The gRPC tensor codec on generated tensors: numpy -> ModelInferResponse -> a request carrying
the same tensors -> numpy is the identity for every datatype and shape, raw and typed; generated
hostile shapes and sizes are client errors (400 -> INVALID_ARGUMENT, 413 -> RESOURCE_EXHAUSTED),
never a server fault, and never an allocation past the limit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tf2aif.image.artifact import TensorSpec
from tf2aif.image.server.errors import ApiError
from tf2aif.image.server.grpc_codec import (
    CONTENTS_FIELD,
    decode_infer_request,
    encode_infer_response,
)
from tf2aif.image.server.grpc_messages import message
from tf2aif.image.server.protocol import DATATYPES

pytestmark = pytest.mark.fuzz

Request = message("ModelInferRequest")
Response = message("ModelInferResponse")
LIMIT = 1 << 16
NUMERIC = [name for name in DATATYPES if name != "BYTES"]
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


@st.composite
def tensors(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    datatype = draw(st.sampled_from(list(DATATYPES)))
    shape = draw(shapes)
    if datatype == "BYTES":
        items = draw(
            st.lists(st.binary(max_size=8), min_size=math.prod(shape), max_size=math.prod(shape))
        )
        array = np.empty(len(items), dtype=np.object_)
        array[:] = items
        return datatype, array.reshape(shape)
    return datatype, draw(hnp.arrays(DATATYPES[datatype], shape))


def _round_trip(named: list[tuple[str, np.ndarray]], raw: bool) -> dict[str, np.ndarray]:
    """Encode as a response, copy its tensors into a request, decode the request."""
    outputs = {f"t{i}": array for i, (_, array) in enumerate(named)}
    specs = [
        TensorSpec(name=f"t{i}", datatype=datatype, shape=tuple(array.shape))
        for i, (datatype, array) in enumerate(named)
    ]
    response = Response.FromString(
        encode_infer_response(
            Response, model_name="m", model_version="1", request_id="r", wanted=(),
            outputs=outputs, specs=specs, raw=raw,
        ).SerializeToString()
    )  # fmt: skip
    request = Request(model_name="m")
    for tensor in response.outputs:
        request.inputs.add().CopyFrom(
            Request.InferInputTensor.FromString(tensor.SerializeToString())
        )
    request.raw_input_contents.extend(response.raw_output_contents)
    arrays, datatypes, was_raw = decode_infer_request(request, max_bytes=LIMIT)
    assert was_raw == bool(response.raw_output_contents)
    assert datatypes == {f"t{i}": datatype for i, (datatype, _) in enumerate(named)}
    return arrays


@given(named=st.lists(tensors(), min_size=1, max_size=3), raw=st.booleans())
def test_numpy_to_contents_and_back_is_the_identity(named, raw):
    arrays = _round_trip(named, raw)
    for i, (_, array) in enumerate(named):
        got = arrays[f"t{i}"]
        assert got.dtype == array.dtype and got.shape == array.shape
        if array.dtype == np.object_:
            assert got.reshape(-1).tolist() == array.reshape(-1).tolist()
        else:  # NaNs compare equal here, and -0.0 keeps its sign through raw bytes
            assert got.tobytes() == array.tobytes() or np.array_equal(got, array, equal_nan=True)


def _raw_request(datatype: str, shape: list[int], chunk: bytes) -> object:
    request = Request(model_name="m")
    request.inputs.add(name="x", datatype=datatype, shape=shape)
    request.raw_input_contents.append(chunk)
    return request


@given(
    datatype=st.sampled_from(NUMERIC),
    shape=st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=4),
    extra=st.integers(min_value=-16, max_value=16),
)
def test_hostile_shapes_and_sizes_are_client_errors(datatype, shape, extra):
    """A shape over the limit (even beside a 0), or raw bytes that do not match the shape, is
    refused with 413 or 400 before numpy allocates anything."""
    itemsize = DATATYPES[datatype].itemsize
    needed = math.prod(shape) * itemsize
    length = max(0, min(needed, LIMIT) + extra)
    request = _raw_request(datatype, shape, b"\0" * length)
    too_big = needed > LIMIT or max(shape) > LIMIT
    if not too_big and length == needed:
        (array,) = decode_infer_request(request, max_bytes=LIMIT)[0].values()
        assert array.shape == tuple(shape)
        return
    with pytest.raises(ApiError) as caught:
        decode_infer_request(request, max_bytes=LIMIT)
    assert caught.value.status == (413 if too_big else 400)
    assert "input 'x'" in caught.value.message


@given(
    datatype=st.sampled_from(list(CONTENTS_FIELD)),
    count=st.integers(0, 8),
    given_=st.integers(0, 8),
)
def test_typed_contents_of_the_wrong_length_are_refused(datatype, count, given_):
    request = Request(model_name="m")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[count])
    field = getattr(tensor.contents, CONTENTS_FIELD[datatype])
    field.extend(
        [b"a"] * given_
        if datatype == "BYTES"
        else [True] * given_
        if datatype == "BOOL"
        else [1] * given_
    )
    if count == given_:
        (array,) = decode_infer_request(request, max_bytes=LIMIT)[0].values()
        assert array.shape == (count,)
        return
    with pytest.raises(ApiError) as caught:
        decode_infer_request(request, max_bytes=LIMIT)
    assert caught.value.status == 400
    assert f"needs {count} values" in caught.value.message

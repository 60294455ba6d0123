"""The fast JSON tensor decoder gives the reference decoder's answer: the same array (values,
dtype, shape) or the same 400 message, on generated `data` lists and whole request bodies."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.server.errors import ApiError
from tf2aif.server.protocol import DATATYPES, _from_json, parse_infer_request

_scalars = st.one_of(
    st.floats(),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-300, max_value=300),
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 2**64, 0.5, -0.0]),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
_lists = st.one_of(
    st.lists(st.floats(allow_nan=False, width=32), max_size=40),  # the common case
    st.lists(_scalars, max_size=12),
    st.lists(st.lists(_scalars, max_size=3), max_size=4),  # nested, maybe ragged
    st.lists(st.booleans(), min_size=1, max_size=5),
)


def _answer(data, dtype, shape, fast):
    try:
        return _from_json("x", data, dtype, shape, fast=fast)
    except ApiError as exc:
        return exc


def _shape_for(data) -> tuple[int, ...]:
    flat = sum(len(x) if isinstance(x, list) else 1 for x in data)
    return (flat,)


@pytest.mark.fuzz
@given(data=_lists, datatype=st.sampled_from(sorted(DATATYPES)), off_by=st.sampled_from([0, 0, 1]))
def test_fast_and_reference_decoders_agree(data, datatype, off_by):
    dtype = DATATYPES[datatype]
    shape = tuple(d + off_by for d in _shape_for(data))
    fast, reference = _answer(data, dtype, shape, True), _answer(data, dtype, shape, False)
    if isinstance(reference, ApiError):
        assert isinstance(fast, ApiError), (data, datatype)
        assert (fast.status, fast.message) == (reference.status, reference.message)
        return
    assert isinstance(fast, np.ndarray), (data, datatype, fast)
    assert (fast.dtype, fast.shape) == (reference.dtype, reference.shape)
    if dtype == np.object_:
        assert fast.tolist() == reference.tolist()
    else:
        np.testing.assert_array_equal(fast, reference)


@pytest.mark.fuzz
@given(
    values=st.lists(st.floats(width=32), min_size=1, max_size=64),
    datatype=st.sampled_from(["FP16", "FP32", "FP64"]),
)
def test_whole_bodies_decode_to_the_values_sent(values, datatype):
    dtype = DATATYPES[datatype]
    sent = np.array(values, dtype=np.float32).astype(dtype)
    body = orjson.dumps(
        {"inputs": [{"name": "x", "datatype": datatype, "shape": [len(values)], "data": values}]}
    )
    try:
        parsed = parse_infer_request(body)
    except ApiError as exc:  # orjson writes NaN/Inf as null: the reference rejects it as well
        assert any(not math.isfinite(v) for v in values), exc.message
        return
    np.testing.assert_array_equal(parsed.inputs["x"], sent)


def test_the_fast_path_handles_what_it_should_and_falls_back_otherwise():
    from tf2aif.server.protocol import _flat_floats

    assert _flat_floats([0.5, 1, True], np.dtype(np.float32)).tolist() == [0.5, 1.0, 1.0]
    for fallback in ([], [[0.5]], ["0.5"], [None], [True, False], [2**60, 0.5]):
        assert _flat_floats(fallback, np.dtype(np.float32)) is None, fallback
    assert _flat_floats([1, 2], np.dtype(np.int32)) is None  # integers keep the reference path

"""String tensors handed to OpenVINO: every string arrives intact, or the request is refused."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tf2aif.image.openvino_ext import (
    as_openvino_input,
    as_openvino_inputs,
    load_extensions,
    refusal,
)

STRINGS = st.one_of(st.binary(max_size=12), st.text(max_size=8))
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)


def _object_array(values: list, shape: tuple[int, ...]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array.reshape(shape)


@given(data=st.data(), shape=SHAPES)
def test_strings_arrive_intact_or_the_inputs_are_refused(data, shape):
    values = data.draw(
        st.lists(STRINGS, min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))
    )
    array = _object_array(values, shape)
    encoded = [v.encode() if isinstance(v, str) else v for v in values]
    why = refusal({"text": array})
    if any(v.endswith(b"\0") for v in encoded):
        assert why and "'text'" in why and "NUL" in why
        with pytest.raises(ValueError, match="NUL"):
            as_openvino_input(array)
        return
    assert why is None
    converted = as_openvino_input(array)
    assert converted.shape == array.shape
    assert converted.reshape(-1).tolist() == encoded  # every byte, in order


def test_numeric_inputs_pass_through_untouched():
    image = np.zeros((2, 8, 8, 1), np.float32)
    assert as_openvino_inputs({"image": image})["image"] is image
    assert refusal({"image": image}) is None


def test_a_string_tensor_holding_a_number_is_refused_not_zero_filled():
    with pytest.raises(ValueError, match="holds a int"):
        as_openvino_input(_object_array([b"ok", 5], (2,)))


def test_an_unknown_extension_is_named():
    with pytest.raises(RuntimeError, match="unknown OpenVINO extension 'nope'"):
        load_extensions(["nope"])


def test_a_missing_extension_says_which_package_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino_tokenizers", None)  # import fails
    with pytest.raises(RuntimeError, match="pip install openvino-tokenizers"):
        load_extensions(["openvino_tokenizers"])

"""benchmarks/zoo.py: the served-latency request it sends and the table columns it renders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scripts import load_script
from tf2aif.image.server.protocol import parse_infer_request

REPO = Path(__file__).resolve().parents[2]


zoo = load_script("benchmarks/zoo.py", "zoo_benchmark")


def test_a_sample_with_numbers_and_strings_is_one_oip_json_request():
    sample = {
        "text": np.array([[b"a cat"], ["\u00e9t\u00e9".encode()]], dtype=object),
        "ids": np.array([[1, 2, 3]], dtype=np.int64),
    }
    request = parse_infer_request(zoo._infer_json(sample))
    assert request.inputs["text"].tolist() == [[b"a cat"], ["\u00e9t\u00e9".encode()]]
    assert request.inputs["ids"].dtype == np.int64 and request.inputs["ids"].tolist() == [[1, 2, 3]]


def test_a_row_shows_both_latencies_against_their_own_reference():
    cell = {
        "status": "ok",
        "served_p50_ms": 3.0,
        "served_p50_native_ms": 6.0,
        "p50_ms": 1.0,
        "p50_native_ms": 4.0,
    }
    row = zoo._row("m", "tflite-fp32", cell).split(" | ")
    header = [
        "model", "variant", "result", "s", "size", "max abs diff", "top-1", "acc drop",
        "served p50 ms", "served vs TF", "in-process p50 ms", "in-process vs TF",
    ]  # fmt: skip
    by_column = dict(zip(header, [c.strip(" |") for c in row], strict=True))
    assert by_column["served p50 ms"] == "3" and by_column["served vs TF"] == "0.50"
    assert by_column["in-process p50 ms"] == "1" and by_column["in-process vs TF"] == "0.25"
    unserved = zoo._row("m", "tflite-fp32", {**cell, "served_p50_ms": None}).split(" | ")
    assert [c.strip(" |") for c in unserved][8:10] == ["", ""]


def test_the_table_header_says_how_latency_was_measured(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "examples" / "zoo"))  # the zoo's model list
    text = zoo.render(tmp_path)
    assert "| served p50 ms | served vs TF | in-process p50 ms | in-process vs TF |" in text
    assert f"{zoo.SERVED_RUNS} sequential requests after {zoo.SERVED_WARMUP} warm-ups" in text
    assert "OIP v2 JSON" in text and "`python -m tf2aif serve`" in text


# ---- generated inputs -------------------------------------------------------------------------

shapes = hnp.array_shapes(min_dims=1, max_dims=3, max_side=4)
numeric = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.uint8]).flatmap(
    lambda dtype: hnp.arrays(
        dtype,
        shapes,
        elements=hnp.from_dtype(np.dtype(dtype), allow_nan=False, allow_infinity=False),
    )
)
strings = shapes.flatmap(
    lambda shape: hnp.arrays(object, shape, elements=st.text(max_size=6).map(str.encode))
)
samples = st.dictionaries(
    st.text(min_size=1, max_size=8), numeric | strings, min_size=1, max_size=3
)


@pytest.mark.fuzz
@given(sample=samples)
def test_the_server_reads_back_exactly_the_sample_sent(sample):
    request = parse_infer_request(zoo._infer_json(sample))
    assert list(request.inputs) == list(sample)
    for name, sent in sample.items():
        received = request.inputs[name]
        assert received.shape == sent.shape
        if sent.dtype == object:
            assert received.dtype == object and received.tolist() == sent.tolist()
        else:
            assert received.dtype == sent.dtype
            np.testing.assert_array_equal(received, sent)

"""Which fallback candidate is tried, which is published, and how a failure is reported (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.image.convert.backends import FALLBACKS
from tf2aif.image.convert.backends.tflite import COMPUTE_OPS, float_layer_names
from tf2aif.image.convert.fallback import (
    FIRST,
    ORDER,
    Attempt,
    candidates_for,
    chosen,
    failure_line,
    figure_of,
    float_summary,
)


def test_every_backend_offers_candidates_from_the_documented_order():
    for backend, by_precision in FALLBACKS.items():
        for precision, offered in by_precision.items():
            assert FIRST not in offered, backend
            assert set(offered) <= set(ORDER[precision]), (backend, precision)


def test_the_order_runs_from_everything_quantized_to_the_most_float():
    assert candidates_for("int8", ("float-sensitive", "float-io"), allowed=True) == (
        "full",
        "float-io",
        "float-sensitive",
    )
    assert candidates_for("int8", ("float-io",), allowed=False) == ("full",)
    assert candidates_for("fp32", ("float-io",), allowed=True) == ("full",)


def test_a_failure_names_every_candidate_and_its_figure():
    attempts = [
        Attempt(candidate="full", passed=False, figure="accuracy_drop 0.307 > 0.01"),
        Attempt(candidate="float-io", passed=False, figure="accuracy_drop 0.0175 > 0.01"),
    ]
    assert chosen(attempts) is None
    assert failure_line(attempts) == (
        "no candidate passed the fidelity gate (full: accuracy_drop 0.307 > 0.01; "
        "float-io: accuracy_drop 0.0175 > 0.01)"
    )


def test_figure_of_lists_only_the_failing_checks():
    report = {
        "checks": [
            {"metric": "nonfinite", "measured": 0, "op": "<=", "threshold": 0.0, "passed": True},
            {
                "metric": "top1_agreement",
                "measured": 0.5,
                "op": ">=",
                "threshold": 0.98,
                "passed": False,
            },
            {
                "metric": "max_abs_diff",
                "measured": None,
                "op": "<=",
                "threshold": 0.1,
                "passed": None,
            },
        ]
    }
    assert figure_of(report) == "top1_agreement 0.5 < 0.98"


def test_the_summary_says_what_stayed_float():
    attempt = Attempt(
        candidate="float-io",
        passed=True,
        figure="",
        float_layers=tuple(f"dense_{i}" for i in range(7)),
        layers=57,
    )
    assert float_summary("int8", attempt) == (
        "int8 (float-io), 7 of 57 layers float: dense_0, dense_1, dense_2, dense_3, dense_4, "
        "+2 more"
    )
    assert float_summary("int8", Attempt(candidate="full", passed=True, figure="")) == (
        "int8, all layers"
    )


candidate_names = st.sampled_from(ORDER["int8"])
attempts_strategy = st.lists(
    st.builds(
        Attempt,
        candidate=candidate_names,
        passed=st.booleans(),
        figure=st.text(max_size=20),
        float_layers=st.lists(st.text(min_size=1, max_size=8), max_size=8).map(tuple),
        layers=st.none() | st.integers(min_value=1, max_value=500),
    ),
    max_size=4,
)


@pytest.mark.fuzz
@given(attempts=attempts_strategy)
def test_the_chosen_attempt_passed_and_none_before_it_did(attempts):
    picked = chosen(attempts)
    if picked is None:
        assert not any(a.passed for a in attempts)
        if attempts:
            line = failure_line(attempts)
            assert line.count(": ") >= len(attempts)
            assert all(a.candidate in line for a in attempts)
    else:
        assert picked.passed
        index = attempts.index(picked)
        assert not any(a.passed for a in attempts[:index])


@pytest.mark.fuzz
@given(
    precision=st.sampled_from(["fp32", "fp16", "int8"]),
    offered=st.lists(st.sampled_from(["float-io", "float-sensitive", "other"]), unique=True),
    allowed=st.booleans(),
)
def test_candidates_start_with_full_follow_the_order_and_need_an_offer(precision, offered, allowed):
    tried = candidates_for(precision, offered, allowed=allowed)
    assert tried[0] == FIRST
    assert all(c in offered for c in tried[1:])
    order = ORDER.get(precision, (FIRST,))
    assert list(tried) == sorted(tried, key=order.index)
    if not allowed:
        assert tried == (FIRST,)


ops = st.sampled_from(sorted(COMPUTE_OPS) + ["SUB", "MUL", "ADD", "SOFTMAX", "LOGISTIC"])
rows_strategy = st.lists(
    st.tuples(ops, st.floats(0, 10), st.floats(0, 1)), min_size=1, max_size=30
).map(
    lambda rows: [
        {
            "op_name": op,
            "tensor_name": f"t{i}",
            "mean_squared_error": repr(mse),
            "scale": repr(scale),
        }
        for i, (op, mse, scale) in enumerate(rows)
    ]
)


@pytest.mark.fuzz
@given(rows=rows_strategy)
def test_tflite_keeps_the_ends_float_and_sensitive_only_adds(rows):
    io = float_layer_names(rows, sensitive=False)
    sensitive = float_layer_names(rows, sensitive=True)
    compute = [i for i, row in enumerate(rows) if row["op_name"] in COMPUTE_OPS]
    names = [row["tensor_name"] for row in rows]
    if compute:
        ends = set(names[: compute[0] + 1] + names[compute[-1] :])
        assert set(io) <= ends
        assert set(io) >= ends - {names[i] for i in compute}
    else:
        assert io == ()
    for float_names in (io, sensitive):
        assert list(float_names) == sorted(float_names, key=names.index)
        if len(rows) > 1:
            assert len(float_names) < len(rows)  # some op stays int8
    if len(io) < len(rows) - 1:
        assert len(sensitive) > len(io)  # at least the worst remaining layer


def test_the_image_label_says_what_stayed_float_only_after_a_fallback(tmp_path):
    import json

    from tf2aif.pipeline.build import fidelity_labels

    report = {"variant": "tflite-int8", "passed": True, "checks": []}
    (tmp_path / "fidelity.json").write_text(json.dumps(report))
    assert set(fidelity_labels(tmp_path)) == {"io.tf2aif.fidelity"}
    summary = "int8 (float-io), 2 of 3 layers float: dense, probabilities"
    report["fallback"] = {"candidate": "float-io", "summary": summary, "tried": []}
    (tmp_path / "fidelity.json").write_text(json.dumps(report))
    labels = fidelity_labels(tmp_path)
    assert labels["io.tf2aif.precision.detail"] == summary
    assert json.loads(labels["io.tf2aif.fidelity"])["fallback"]["candidate"] == "float-io"

"""benchmarks/zoo.py keeps cells run with a recipe option beside the default ones, and counts them."""

from __future__ import annotations

import pytest

from scripts import load_script


@pytest.fixture(scope="module")
def zoo():
    return load_script("benchmarks/zoo.py", "zoo_benchmark")


def test_option_runs_are_keyed_beside_the_default_cell(zoo):
    assert zoo.option_label({}) == ""
    assert zoo.option_label({"select_tf_ops": True}) == "+select_tf_ops"
    assert zoo.option_label({"opset": 18, "int8_io": True}) == "+int8_io+opset=18"
    cells = {"tflite-fp32+select_tf_ops": {}, "tflite-fp32": {}, "tflite-fp16+select_tf_ops": {}}
    assert zoo.cell_keys(cells, "tflite-fp32") == ["tflite-fp32", "tflite-fp32+select_tf_ops"]
    assert zoo.cell_keys(cells, "tflite-fp16") == ["tflite-fp16+select_tf_ops"]
    assert zoo.cell_keys(cells, "tflite-int8") == []


def test_the_summary_counts_defaults_and_the_cells_an_option_fixes(zoo):
    failed, ok = {"status": "failed"}, {"status": "ok"}
    results = {
        "lstm": {"tflite-fp32": failed, "tflite-fp32+select_tf_ops": ok, "tf-fp32": ok},
        "cnn": {"tflite-fp32": ok, "tflite-fp32+select_tf_ops": ok},
    }
    summary = zoo._summary(results)
    assert summary.startswith("**2 of 3 cells converted and passed the gate** with default options")
    assert "1 did not convert (2 models)" in summary
    assert "1 more cells pass, so 3 of 3 cells have a passing build" in summary
    assert "option" not in zoo._summary({"cnn": {"tflite-fp32": ok}}).split("options;")[1]

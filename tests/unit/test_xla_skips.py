"""A model whose signature calls XLA-compiled functions (Keras 3's grouped Conv2D on TensorFlow)
has its onnxruntime cells skipped before any build, with the reason and the fix."""

from __future__ import annotations

from functools import cache

import pytest

from tf2aif.pipeline.manifest import load_manifest
from tf2aif.pipeline.model_inspect import ModelFacts, TensorFacts, predict
from tf2aif.pipeline.recipes import load_recipes
from tf2aif.pipeline.resolve import resolve

from projects import write_project

MATRIX = """\
version: 1
name: grouped
model: {path: models/m}
processing: {module: app/processing.py}
targets:
  platforms: [cpu]
  runtimes: [tf, tflite, onnxruntime, openvino]
  precisions: [fp32, fp16]
"""


def facts(xla_functions=frozenset()) -> ModelFacts:
    return ModelFacts(
        digest="sha256:" + "0" * 64,
        inputs=(TensorFacts(name="image", dtype="float32", shape=(-1, 32, 32, 3)),),
        outputs=(TensorFacts(name="output_0", dtype="float32", shape=(-1, 10)),),
        ops=frozenset({"Conv2D", "StatefulPartitionedCall", "Erf"}),
        xla_functions=frozenset(xla_functions),
    )


GROUPED = facts({"__inference__conv_xla_162509", "__inference__conv_xla_162611"})


@cache
def recipes():
    return load_recipes(env={})


@pytest.fixture
def manifest(tmp_path):
    loaded, _ = load_manifest(write_project(tmp_path, MATRIX), recipes=recipes())
    return loaded


def test_xla_compiled_functions_skip_every_onnxruntime_cell_with_reason_and_fix(manifest):
    resolution = resolve(manifest, recipes(), model_facts=GROUPED)
    assert {v.runtime for v in resolution.variants} == {"tf", "tflite", "openvino"}
    skipped = {s.id: s for s in resolution.skipped}
    for precision in ("fp32", "fp16"):
        cell = skipped[f"cpu/onnxruntime/{precision}"]
        assert cell.by_model
        assert "2 function(s) compiled with XLA" in cell.reason
        assert "__inference__conv_xla_162509" in cell.reason  # the first one, by name
        assert "tflite or openvino" in cell.fix and "DepthwiseConv2D" in cell.fix


def test_without_xla_functions_onnxruntime_is_not_ruled_out():
    assert predict(facts(), ["tf", "tflite", "onnxruntime", "openvino"]) == ()
    assert [p.cell for p in predict(GROUPED, ["tflite", "onnxruntime"])] == ["onnxruntime/*"]
    assert predict(GROUPED, ["tflite", "openvino"]) == ()  # they convert it: nothing to say

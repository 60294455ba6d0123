"""options.tflite.select_tf_ops / unroll_recurrent: validated, predicted, planned on the right bases.

The model's facts are given as data (no TensorFlow): a recurrent model holds TensorList ops.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.cli.pipeline import option_lines
from tf2aif.errors import ManifestError
from tf2aif.pipeline.bake import bake_dict
from tf2aif.pipeline.manifest import load_manifest
from tf2aif.pipeline.model_inspect import (
    TENSOR_LIST_OPS,
    ModelFacts,
    TensorFacts,
    option_issues,
    predict,
)
from tf2aif.pipeline.plan import make_plan
from tf2aif.pipeline.recipes import load_recipes
from tf2aif.pipeline.resolve import resolve

from projects import write_project

MANIFEST = """\
version: 1
name: rnn
model: {{path: {model}}}
processing: {{module: app/processing.py}}
calibration: {{module: app/calibration.py, function: samples, count: 50}}
targets:
  platforms: [cpu, arm]
  runtimes: [tflite, onnxruntime]
  precisions: [fp32, int8]
{options}"""


def facts(*, ops=("While", "TensorListReserve", "MatMul"), shape=(-1, 12)) -> ModelFacts:
    return ModelFacts(
        digest="sha256:" + "0" * 64,
        inputs=(TensorFacts(name="tokens", dtype="int32", shape=tuple(shape)),),
        outputs=(TensorFacts(name="probs", dtype="float32", shape=(-1, 3)),),
        ops=frozenset(ops),
    )


@cache
def recipes():
    return load_recipes(env={})


def manifest(tmp_path, options: str = "", *, keras: bool = False):
    model = "models/m.keras" if keras else "models/m"
    text = MANIFEST.format(model=model, options=options)
    loaded, _ = load_manifest(
        write_project(tmp_path, text, model=model, keras=keras), recipes=recipes()
    )
    return loaded


SELECT = "options:\n  tflite: {select_tf_ops: true}\n"
UNROLL = "options:\n  tflite: {unroll_recurrent: true}\n"


def test_select_tf_ops_plans_every_tflite_cell_on_the_flex_bases(tmp_path):
    resolution = resolve(manifest(tmp_path, SELECT), recipes(), model_facts=facts())
    assert not [s for s in resolution.skipped if s.by_model]
    tflite = [v for v in resolution.variants if v.runtime == "tflite"]
    assert {v.id for v in tflite} == {
        f"{p}/tflite/{q}" for p in ("cpu", "arm") for q in ("fp32", "int8")
    }
    for v in tflite:
        assert (v.converter_image.base, v.runtime_image.base) == (
            "convert-tflite-flex",
            "serve-tflite-flex",
        )
        assert v.options["select_tf_ops"] is True
        assert v.labels["io.tf2aif.tflite.flex"] == "tensorflow-2.18.1"
        assert "Flex delegate" in v.labels["io.tf2aif.option.select_tf_ops"]
    others = [v for v in resolution.variants if v.runtime != "tflite"]
    assert {v.runtime_image.base for v in others} == {"serve-onnxruntime"}
    assert not [k for v in others for k in v.labels if "flex" in k or "option" in k]


def test_the_bake_graph_builds_flex_bases_and_labels_the_images(tmp_path):
    plan = make_plan(resolve(manifest(tmp_path, SELECT), recipes(), model_facts=facts()), env={})
    targets = bake_dict(plan)["target"]
    assert {"base-convert-tflite-flex", "base-serve-tflite-flex"} <= set(targets)
    assert "base-serve-tflite" not in targets  # no tflite variant serves on plain LiteRT
    assert targets["base-serve-tflite-flex"]["platforms"] == ["linux/amd64", "linux/arm64"]
    serve = targets["serve-cpu-arm-tflite-fp32"]
    assert serve["labels"]["io.tf2aif.tflite.flex"] == "tensorflow-2.18.1"
    assert "2.0 GB instead of 0.65 GB" in serve["labels"]["io.tf2aif.option.select_tf_ops"]
    spec = json.loads(targets["convert-tflite-fp32"]["args"]["CONVERT_SPEC"])
    assert spec["options"]["select_tf_ops"] is True
    assert targets["convert-tflite-fp32"]["contexts"]["base"] == "target:base-convert-tflite-flex"
    lines = option_lines(plan)
    assert "serve-cpu-arm-tflite-fp32: options select_tf_ops=true" in lines
    assert any(
        line.startswith(
            "serve-cpu-arm-tflite-int8: options.tflite.select_tf_ops serves on base serve-tflite-flex: "
        )
        for line in lines
    )


def test_without_the_option_the_bake_graph_is_unchanged_by_its_existence(tmp_path):
    plan = make_plan(
        resolve(manifest(tmp_path), recipes(), model_facts=facts(ops=("MatMul",))), env={}
    )
    targets = bake_dict(plan)["target"]
    assert not [name for name in targets if "flex" in name]
    spec = json.loads(targets["convert-tflite-fp32"]["args"]["CONVERT_SPEC"])
    assert spec["options"] == {
        "int8_io": False
    }  # unset flags stay out of the spec (and its digest)


def test_unroll_recurrent_on_a_fixed_length_keras_model_keeps_plain_litert(tmp_path):
    resolution = resolve(manifest(tmp_path, UNROLL, keras=True), recipes(), model_facts=facts())
    tflite = [v for v in resolution.variants if v.runtime == "tflite"]
    assert len(tflite) == 4 and not [s for s in resolution.skipped if s.by_model]
    assert {v.runtime_image.base for v in tflite} == {"serve-tflite"}
    assert all(v.options["unroll_recurrent"] is True for v in tflite)


def test_unroll_recurrent_on_a_saved_model_is_a_located_error(tmp_path):
    with pytest.raises(ManifestError) as error:
        resolve(manifest(tmp_path, UNROLL), recipes(), model_facts=facts())
    text = str(error.value)
    assert "tf2aif.yaml:11:" in text and "options.tflite.unroll_recurrent" in text
    assert ".keras" in text and "select_tf_ops: true" in text


def test_unroll_recurrent_with_a_dynamic_sequence_length_is_a_located_error(tmp_path):
    with pytest.raises(ManifestError) as error:
        resolve(
            manifest(tmp_path, UNROLL, keras=True), recipes(), model_facts=facts(shape=(-1, -1))
        )
    text = str(error.value)
    assert "tf2aif.yaml:11:" in text and "fixed sequence length" in text
    assert "tokens [-1, -1]" in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            "  tflite: {select_tf_ops: 'yes'}\n",
            "options.tflite.select_tf_ops is true or false, not 'yes'",
        ),
        (
            "  tflite: {unroll_recurrent: 1}\n",
            "options.tflite.unroll_recurrent is true or false, not 1",
        ),
        (
            "  tflite: {select_tf_op: true}\n",
            "unknown tflite option 'select_tf_op' (did you mean \"select_tf_ops\"?)",
        ),
    ],
)
def test_option_values_and_names_are_checked_where_they_are_written(tmp_path, options, message):
    text = MANIFEST.format(model="models/m", options="options:\n" + options)
    with pytest.raises(ManifestError) as error:
        load_manifest(write_project(tmp_path, text), recipes=recipes())
    assert message in str(error.value)
    assert "tf2aif.yaml:11:" in str(error.value)


def test_without_an_option_the_fix_names_each_option_that_applies():
    saved = predict(facts(), ["tflite"])[0].fix
    assert "options.tflite.select_tf_ops: true" in saved and "unroll_recurrent" not in saved
    keras = predict(facts(), ["tflite"], keras_source=True)[0].fix
    assert "options.tflite.select_tf_ops: true" in keras
    assert "options.tflite.unroll_recurrent: true" in keras
    dynamic = predict(facts(shape=(-1, -1)), ["tflite"], keras_source=True)[0].fix
    assert "unroll_recurrent: true needs a fixed sequence length (dynamic: tokens)" in dynamic


# -- generated: every cell is either predicted with a fix naming a real option or runtime, or
# planned for conversion; never dropped silently --------------------------------------------

RUNTIMES = ("tf", "tflite", "onnxruntime", "openvino")
OPS = (*sorted(TENSOR_LIST_OPS), "StringSplit", "MatMul", "Conv2D")
FLAG = st.sampled_from([None, True, False])


@pytest.mark.fuzz
@given(
    ops=st.frozensets(st.sampled_from(OPS)),
    dtype=st.sampled_from(["float32", "int32", "string"]),
    steps=st.sampled_from([-1, 1, 12]),
    keras_source=st.booleans(),
    select=FLAG,
    unroll=FLAG,
    runtimes=st.lists(st.sampled_from(RUNTIMES), min_size=1, max_size=4, unique=True),
)
def test_a_cell_is_predicted_with_a_real_fix_or_its_conversion_is_planned(
    tmp_path_factory, ops, dtype, steps, keras_source, select, unroll, runtimes
):
    model = ModelFacts(
        digest="sha256:" + "0" * 64,
        inputs=(TensorFacts(name="x", dtype=dtype, shape=(-1, steps)),),
        outputs=(TensorFacts(name="y", dtype="float32", shape=(-1, 3)),),
        ops=frozenset(ops),
    )
    tflite = {
        k: v for k, v in (("select_tf_ops", select), ("unroll_recurrent", unroll)) if v is not None
    }
    base = _base(tmp_path_factory, keras_source)
    targets = replace(base.targets, runtimes=tuple(runtimes))
    options = {"tflite": tflite} if tflite else {}
    m = replace(base, targets=targets, options=options)
    refused = option_issues(model, options, keras_source=keras_source)
    try:
        resolution = resolve(m, recipes(), model_facts=model)
    except ManifestError as error:
        # an option the model cannot use, or nothing left to build: each said where and why
        text = str(error)
        assert ("tflite" in runtimes and refused and "options.tflite.unroll_recurrent" in text) or (
            "the matrix is empty" in text
        ), text
        return
    assert not ("tflite" in runtimes and refused)
    known_runtimes = set(recipes().runtimes)
    known_options = {f"options.{r}.{o}" for r in known_runtimes for o in recipes().option_names(r)}
    planned = {v.id for v in resolution.variants}
    for cell in resolution.skipped:
        if not cell.by_model:
            continue
        assert cell.id not in planned and cell.reason and cell.fix
        named = {o for o in known_options if o in cell.fix} | {
            r for r in known_runtimes if f"runtime {r}" in cell.fix
        }
        assert named, cell.fix
        if cell.runtime == "tflite" and model.ops & TENSOR_LIST_OPS and "string" not in cell.reason:
            assert "options.tflite.select_tf_ops: true" in cell.fix
            assert select is not True  # the option takes the cell out of the skips
    cells = {f"cpu/{r}/{p}" for r in runtimes for p in ("fp32", "fp16")}
    assert planned | {s.id for s in resolution.skipped} == cells
    for v in resolution.variants:  # flex bases exactly when the option is set
        assert (v.runtime_image.base == "serve-tflite-flex") == (
            v.runtime == "tflite" and select is True
        )


_BASES: dict = {}


def _base(tmp_path_factory, keras_source: bool):
    if keras_source not in _BASES:
        root = tmp_path_factory.mktemp("fuzz-rnn")
        model = "models/m.keras" if keras_source else "models/m"
        text = MANIFEST.format(model=model, options="").replace("[fp32, int8]", "[fp32, fp16]")
        text = text.replace("targets:\n  platforms: [cpu, arm]", "targets:\n  platforms: [cpu]")
        _BASES[keras_source], _ = load_manifest(
            write_project(root, text, model=model, keras=keras_source), recipes=recipes()
        )
    return _BASES[keras_source]


def test_set_unroll_reaches_recurrent_layers_inside_wrappers_and_nothing_else():
    from tf2aif.image.convert.unroll import set_unroll

    lstm = {"class_name": "LSTM", "config": {"units": 8, "unroll": False}}
    gru = {"class_name": "GRU", "config": {"units": 4, "unroll": False}}
    wrapped = {
        "class_name": "Bidirectional",
        "config": {"layer": lstm, "backward_layer": gru, "merge_mode": "concat"},
    }
    assert set_unroll(wrapped) is True
    assert lstm["config"]["unroll"] is True and gru["config"]["unroll"] is True
    dense = {"class_name": "Dense", "config": {"units": 3}}
    assert set_unroll(dense) is False and "unroll" not in dense["config"]
    assert set_unroll([{"class_name": "SimpleRNN", "config": {}}]) is True

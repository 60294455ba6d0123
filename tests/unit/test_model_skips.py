"""Cells the model's own facts rule out are skipped in resolve, with the reason and the fix."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.cli.main import main
from tf2aif.errors import ManifestError
from tf2aif.pipeline.manifest import CellPattern, load_manifest
from tf2aif.pipeline.model_inspect import (
    CACHE_DIR,
    STRING_OP_PREFIXES,
    TENSOR_LIST_OPS,
    ModelFacts,
    TensorFacts,
    facts_or_why_not,
    notes,
    predict,
)
from tf2aif.pipeline.recipes import load_recipes
from tf2aif.pipeline.resolve import resolve

from projects import write_project

MATRIX = """\
version: 1
name: skips
model: {path: models/m}
processing: {module: app/processing.py}
targets:
  platforms: [cpu]
  runtimes: [tf, tflite, onnxruntime, openvino]
  precisions: [fp32, fp16]
"""


def facts(ops=(), dtype="float32", xla_functions=()) -> ModelFacts:
    return ModelFacts(
        digest="sha256:" + "0" * 64,
        inputs=(TensorFacts(name="x", dtype=dtype, shape=(-1, 8)),),
        outputs=(TensorFacts(name="y", dtype="float32", shape=(-1, 3)),),
        ops=frozenset(ops),
        xla_functions=frozenset(xla_functions),
    )


RECURRENT = facts({"While", "TensorListReserve", "MatMul"})
# Keras 3's grouped Conv2D on TensorFlow: the signature calls XLA-compiled functions
GROUPED = facts(
    {"Conv2D", "StatefulPartitionedCall", "Erf"},
    xla_functions={"__inference__conv_xla_162509", "__inference__conv_xla_162611"},
)


@cache
def recipes():
    return load_recipes(env={})


@pytest.fixture
def manifest(tmp_path):
    loaded, _ = load_manifest(write_project(tmp_path, MATRIX), recipes=recipes())
    return loaded


def test_recurrent_facts_skip_every_tflite_cell_with_reason_and_fix(manifest):
    resolution = resolve(manifest, recipes(), model_facts=RECURRENT)
    assert not [v for v in resolution.variants if v.runtime == "tflite"]
    skipped = {s.id: s for s in resolution.skipped}
    for precision in ("fp32", "fp16"):
        cell = skipped[f"cpu/tflite/{precision}"]
        assert cell.by_model
        assert "TensorListReserve" in cell.reason
        assert "options.tflite.select_tf_ops: true" in cell.fix
    assert {v.runtime for v in resolution.variants} == {"tf", "onnxruntime", "openvino"}


def test_without_facts_nothing_is_ruled_out(manifest):
    resolution = resolve(manifest, recipes(), model_facts=None)
    assert not [s for s in resolution.skipped if s.by_model]
    assert "cpu/tflite/fp32" in {v.id for v in resolution.variants}


def test_an_include_of_a_ruled_out_cell_is_a_located_error_with_reason_and_fix(manifest):
    include = CellPattern(
        platform="cpu", runtime="tflite", precision="fp32", path="targets.include[0]"
    )
    targets = replace(manifest.targets, runtimes=("tf",), include=(include,))
    with pytest.raises(ManifestError) as error:
        resolve(replace(manifest, targets=targets), recipes(), model_facts=RECURRENT)
    text = str(error.value)
    assert "targets.include[0]" in text
    assert "cpu/tflite/fp32 cannot be built" in text
    assert "TensorListReserve" in text and "fix:" in text and "select_tf_ops" in text


def test_stand_in_model_is_not_inspected_and_says_why(tmp_path):
    write_project(tmp_path, MATRIX)
    found, why_not = facts_or_why_not(
        tmp_path / "models/m", digest="sha256:" + "1" * 64, cache_root=tmp_path
    )
    assert found is None
    assert why_not and "\n" not in why_not
    again = facts_or_why_not(
        tmp_path / "models/m", digest="sha256:" + "1" * 64, cache_root=tmp_path
    )
    assert again == (None, why_not)  # remembered by digest
    missing, why = facts_or_why_not(tmp_path / "nope", digest="sha256:0", cache_root=tmp_path)
    assert missing is None and "no SavedModel" in why


def test_plan_json_of_an_uninspectable_model_skips_nothing_and_warns_once(tmp_path, capsys):
    file = write_project(tmp_path, MATRIX)
    assert main(["plan", "--json", str(file)]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert not [s for s in data["skipped"] if s["by_model"]]
    assert any("tflite" in i["target"] for i in data["images"])
    warnings = [line for line in err.splitlines() if "model not inspected" in line]
    assert len(warnings) == 1
    assert "Traceback" not in err


RUNTIMES = ("tf", "tflite", "onnxruntime", "openvino")
OPS = sorted(TENSOR_LIST_OPS) + [p + "Split" for p in STRING_OP_PREFIXES[:2]] + ["Conv2D", "MatMul"]


@pytest.mark.fuzz
@given(
    ops=st.frozensets(st.sampled_from(OPS)),
    dtype=st.sampled_from(["float32", "int64", "string"]),
    runtimes=st.lists(st.sampled_from(RUNTIMES), min_size=1, max_size=4, unique=True),
    includes=st.lists(st.sampled_from(RUNTIMES), max_size=2, unique=True),
)
def test_every_predicted_cell_is_skipped_or_an_error_and_nothing_else_is_dropped(
    tmp_path_factory, ops, dtype, runtimes, includes
):
    base = _base_manifest(tmp_path_factory)
    include = tuple(
        CellPattern(platform="cpu", runtime=r, precision="fp32", path=f"targets.include[{i}]")
        for i, r in enumerate(includes)
    )
    targets = replace(base.targets, runtimes=tuple(runtimes), include=include)
    manifest = replace(base, targets=targets)
    model = facts(ops, dtype)
    ruled = {p.runtime for p in predict(model, [*runtimes, *includes])}
    try:
        plain = resolve(manifest, recipes())
    except ManifestError:
        plain = None
    try:
        resolution = resolve(manifest, recipes(), model_facts=model)
    except ManifestError as error:
        # an error only because a named or every remaining cell is ruled out by the model
        assert (
            (set(includes) & ruled) or plain is None or {v.runtime for v in plain.variants} <= ruled
        ), str(error)
        if set(includes) & ruled:
            assert "cannot be built: the model has" in str(error)
        return
    assert not set(includes) & ruled
    assert plain is not None
    built = {v.id for v in resolution.variants}
    assert not {v.runtime for v in resolution.variants} & ruled
    by_model = {s.id for s in resolution.skipped if s.by_model}
    assert all(s.fix for s in resolution.skipped if s.by_model)
    expected_dropped = {v.id for v in plain.variants if v.runtime in ruled}
    assert by_model == expected_dropped
    assert built == {v.id for v in plain.variants} - expected_dropped
    other = {(s.id, s.reason) for s in resolution.skipped if not s.by_model}
    assert other == {(s.id, s.reason) for s in plain.skipped}


_BASE = {}


def _base_manifest(tmp_path_factory):
    if "m" not in _BASE:
        root = tmp_path_factory.mktemp("skips")
        _BASE["m"], _ = load_manifest(write_project(root, MATRIX), recipes=recipes())
    return _BASE["m"]


def test_xla_compiled_functions_skip_nothing_and_the_plan_says_they_are_inlined(manifest):
    resolution = resolve(manifest, recipes(), model_facts=GROUPED)
    assert {v.runtime for v in resolution.variants} == {"tf", "tflite", "openvino", "onnxruntime"}
    assert not [s for s in resolution.skipped if s.by_model]
    (note,) = resolution.notes
    assert note.startswith("onnxruntime: 2 function(s) compiled with XLA")
    assert "__inference__conv_xla_162509" in note and "inlined before tf2onnx" in note


def test_xla_functions_are_noted_only_where_the_onnx_export_runs():
    assert predict(GROUPED, ["tf", "tflite", "onnxruntime", "openvino"]) == ()
    assert notes(GROUPED, ["tflite", "openvino"]) == ()  # they convert it: nothing to say
    assert notes(facts(), ["onnxruntime"]) == ()
    (note,) = notes(GROUPED, ["tensorrt", "onnxruntime"])
    assert note.startswith("onnxruntime, tensorrt: 2 function(s)")


def test_plan_prints_the_notes_and_plan_json_carries_them(tmp_path, capsys):
    file = write_project(tmp_path, MATRIX)
    manifest, _ = load_manifest(file, recipes=recipes())
    cached = tmp_path / CACHE_DIR / f"{manifest.model.digest.replace(':', '-')}.json"
    cached.parent.mkdir(parents=True)
    cached.write_text(replace(GROUPED, digest=manifest.model.digest).to_json())
    assert main(["plan", "--json", str(file)]) == 0
    (note,) = json.loads(capsys.readouterr().out)["notes"]
    assert note.startswith("onnxruntime: 2 function(s) compiled with XLA")
    assert main(["plan", str(file)]) == 0
    assert note in " ".join(capsys.readouterr().out.split())

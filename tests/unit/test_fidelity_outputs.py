"""Per-output fidelity limits and the fallback switch: manifest, validation against the model, plan."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.cli.main import main
from tf2aif.errors import ConversionError, ManifestError
from tf2aif.image.convert.fidelity import checks_for
from tf2aif.image.convert.spec import ConvertSpec, OutputThresholds, Thresholds
from tf2aif.pipeline.manifest import load_manifest, output_thresholds
from tf2aif.pipeline.model_inspect import CACHE_DIR, ModelFacts, TensorFacts
from tf2aif.pipeline.recipes import load_recipes
from tf2aif.pipeline.resolve import resolve

from projects import write_project

MANIFEST = """\
version: 1
name: outs
model: {path: models/m}
processing: {module: app/processing.py}
calibration: {module: app/calibration.py, function: samples, count: 50}
targets:
  platforms: [cpu]
  runtimes: [tflite, onnxruntime]
  precisions: [fp32, int8]
fidelity:
  rtol: 0.001
  class_output: probabilities
  outputs:
%s
"""


@cache
def recipes():
    return load_recipes(env={})


def facts(digest: str) -> ModelFacts:
    return ModelFacts(
        digest=digest,
        inputs=(TensorFacts(name="image", dtype="float32", shape=(-1, 8)),),
        outputs=(
            TensorFacts(name="embedding", dtype="float32", shape=(-1, 16)),
            TensorFacts(name="probabilities", dtype="float32", shape=(-1, 3)),
        ),
        ops=frozenset({"MatMul"}),
    )


def project(tmp_path, outputs: str, extra: str = ""):
    file = write_project(tmp_path, MANIFEST % outputs + extra)
    manifest, _ = load_manifest(file, recipes=recipes())
    return file, manifest


def test_per_output_limits_reach_every_conversion_spec(tmp_path):
    _, manifest = project(tmp_path, "    probabilities: {rtol: 0.05}\n    embedding: {atol: 0.2}")
    resolution = resolve(manifest, recipes(), model_facts=facts(manifest.model.digest))
    for variant in resolution.variants:
        assert variant.thresholds.outputs == (
            OutputThresholds(name="embedding", atol=0.2),
            OutputThresholds(name="probabilities", rtol=0.05),
        )
        assert variant.thresholds.limits_for("probabilities") == (None, 0.05)
        assert variant.thresholds.limits_for("embedding") == (0.2, 0.001)


def test_an_unknown_output_name_is_a_located_error_with_the_model_outputs(tmp_path):
    _, manifest = project(tmp_path, "    probabilites: {rtol: 0.05}")
    with pytest.raises(ManifestError) as caught:
        resolve(manifest, recipes(), model_facts=facts(manifest.model.digest))
    text = str(caught.value)
    assert (
        "tf2aif.yaml:14:5: fidelity.outputs.probabilites: 'probabilites' is not an output of the model"
        in text
    )
    assert '(did you mean "probabilities"?)' in text
    assert "its outputs are: embedding, probabilities" in text


def test_an_unknown_class_output_is_located_too(tmp_path):
    _, manifest = project(tmp_path, "    embedding: {atol: 0.2}")
    manifest = manifest.__class__(
        **{**vars(manifest), "thresholds": Thresholds(class_output="scores")}
    )
    with pytest.raises(ManifestError) as caught:
        resolve(manifest, recipes(), model_facts=facts(manifest.model.digest))
    assert "fidelity.class_output: 'scores' is not an output of the model" in str(caught.value)


def test_an_empty_limit_block_is_a_schema_error_exit_1(tmp_path, capsys):
    file, _ = project(tmp_path, "    probabilities: {rtol: 0.05}")
    file.write_text(file.read_text().replace("{rtol: 0.05}", "{}"))
    assert main(["validate", str(file)]) == 1
    err = capsys.readouterr().err
    assert "fidelity.outputs.probabilities" in err and "Traceback" not in err


def test_fallback_switch_reaches_specs_and_overrides_apply_per_precision(tmp_path):
    extra = (
        "  overrides:\n    - {match: {precision: int8, runtime: onnxruntime}, fallback: false}\n"
    )
    _, manifest = project(tmp_path, "    probabilities: {rtol: 0.05}", extra)
    resolution = resolve(manifest, recipes(), model_facts=facts(manifest.model.digest))
    allowed = {v.id: v.thresholds.fallback_allowed for v in resolution.variants}
    assert allowed == {
        "cpu/tflite/fp32": True,
        "cpu/tflite/int8": True,
        "cpu/onnxruntime/fp32": True,
        "cpu/onnxruntime/int8": False,
    }
    # an override without `outputs` keeps the manifest's per-output limits
    assert all(v.thresholds.outputs for v in resolution.variants)


def test_plan_shows_the_gated_output_the_per_output_limits_and_the_fallback(tmp_path, capsys):
    extra = "  overrides:\n    - {match: {runtime: onnxruntime}, fallback: false}\n"
    file, manifest = project(tmp_path, "    probabilities: {rtol: 0.05}", extra)
    cache_file = tmp_path / CACHE_DIR / f"{manifest.model.digest.replace(':', '-')}.json"
    cache_file.parent.mkdir(parents=True)
    cache_file.write_text(facts(manifest.model.digest).to_json())
    assert main(["plan", str(file)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "fidelity gate: top-1 and accuracy on output probabilities; "
        "per output: probabilities rtol <= 0.05" in out
    )
    assert (
        "precision fallback on gate failure: tflite-int8 (full > float-io > float-sensitive); "
        "precision fallback off: onnxruntime-int8 (fidelity.fallback: false turns it off)" in out
    )


def test_unset_fields_keep_the_conversion_spec_json_as_before():
    spec = ConvertSpec(name="m", runtime="tflite", precision="int8", backend="tflite", model="m")
    assert '"thresholds":{"atol":null,"max_accuracy_drop":null' in spec.to_json()
    assert "outputs" not in spec.to_json() and "fallback" not in spec.to_json()


def test_a_per_output_limit_gates_that_output_and_the_rest_use_the_gate_wide_one():
    metrics = {
        "nonfinite": 0,
        "outputs": {
            "embedding": {"max_abs_diff": 0.3, "max_rel_diff": 0.01},
            "probabilities": {"max_abs_diff": 0.02, "max_rel_diff": 0.02},
        },
    }
    thresholds = Thresholds(
        rtol=0.005, outputs=(OutputThresholds(name="probabilities", rtol=0.05),)
    )
    checks = {c.metric: c.passed for c in checks_for(metrics, thresholds)}
    assert checks == {
        "nonfinite": True,
        "max_rel_diff[embedding]": False,
        "max_rel_diff[probabilities]": True,
    }
    unknown = Thresholds(outputs=(OutputThresholds(name="logits", rtol=0.05),))
    with pytest.raises(ConversionError, match="'logits', which is not an output of the model"):
        checks_for(metrics, unknown)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
limit = st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False)
blocks = st.dictionaries(
    names,
    st.fixed_dictionaries({}, optional={"atol": limit, "rtol": limit}).map(
        lambda d: {k: v for k, v in d.items() if v is not None}
    ),
    max_size=6,
)


@pytest.mark.fuzz
@given(block=blocks, atol=limit, rtol=limit)
def test_parsed_limits_round_trip_and_every_output_gets_its_own_or_the_gate_wide_one(
    block, atol, rtol
):
    parsed = output_thresholds(block)
    assert [o.name for o in parsed] == sorted(block)
    thresholds = Thresholds(atol=atol, rtol=rtol, outputs=parsed)
    spec = ConvertSpec(
        name="m",
        runtime="onnxruntime",
        precision="fp16",
        backend="onnx",
        model="m",
        thresholds=thresholds,
    )
    assert ConvertSpec.from_json(spec.to_json()) == spec
    for name, own in block.items():
        assert thresholds.limits_for(name) == (own.get("atol", atol), own.get("rtol", rtol))
    assert thresholds.limits_for("\x00not-named") == (atol, rtol)

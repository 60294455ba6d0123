"""Failure lines, the converter log, the gated class output, string samples, model inspection."""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.errors import ConversionError, PluginError
from tf2aif.image.artifact import TensorSpec
from tf2aif.image.convert.converter_log import captured
from tf2aif.image.convert.failure import describe, failure_line
from tf2aif.image.convert.fidelity import class_output_of
from tf2aif.image.convert.samples import load_samples, synthetic_samples
from tf2aif.image.convert.spec import PluginRef, Thresholds
from tf2aif.pipeline.model_inspect import (
    OPENVINO_STRING_OPS,
    ModelFacts,
    TensorFacts,
    gated_output_line,
    notes,
    predict,
)

# shortened from what the converters printed on the zoo's models
TFLITE_LSTM = (
    'ConverterError: <unknown>:0: error: loc(fused["TensorListReserve:", "lstm_1/TensorArrayV2_1"])'
    ": 'tf.TensorListReserve' op requires element_shape to be static during TF Lite "
    "transformation pass\n<unknown>:0: error: Lowering tensor list ops is failed. Please consider "
    "using Select TF ops"
)
TFLITE_STRING = (
    "ConverterError: error: 'tf.StringLower' op is neither a custom op nor a flex op\n"
    "error: failed while converting: 'main'"
)
LITERT_FLEX = (
    "RuntimeError: Select TensorFlow op(s), included in the given model, is(are) not supported by "
    "this interpreter.Node number 0 (FlexTensorListReserve) failed to prepare."
)
TF2ONNX = "Tensorflow op [model/gelu/Erfc: Erfc] is not supported"
OPENVINO = (
    "FrontEnd API failed with OpConversionFailure:\nSummary:\n-- No conversion rule found for "
    "operations: StaticRegexReplace, StringLower\nTo facilitate the conversion of unsupported "
    "operations, refer to Frontend Extension documentation"
)


@pytest.mark.parametrize(
    ("text", "op", "reason"),
    [
        (TFLITE_LSTM, "TensorListReserve", "requires element_shape to be static"),
        (TFLITE_STRING, "StringLower", "is neither a custom op nor a flex op"),
        (LITERT_FLEX, "FlexTensorListReserve", "failed to prepare"),
        (TF2ONNX, "Erfc", "is not supported"),
        (OPENVINO, "StaticRegexReplace", "No conversion rule found for operations"),
    ],
)
def test_describe_names_the_op_and_why(text, op, reason):
    found_op, found_reason = describe(text)
    assert found_op == op
    assert reason in found_reason


def test_describe_without_an_op_keeps_the_error_line_not_the_traceback():
    text = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: shapes differ'
    assert describe(text) == (None, "ValueError: shapes differ")


def test_failure_line_is_one_line_with_stage_converter_op_and_log(tmp_path):
    line = failure_line(
        stage="convert", converter="tflite", text=TFLITE_LSTM, log=tmp_path / "converter.log"
    )
    assert "\n" not in line
    assert line.startswith("convert failed in tflite on op TensorListReserve: requires")
    assert line.endswith(f"(converter log: {tmp_path / 'converter.log'})")
    error = ConversionError(line, variant="tflite-fp32")
    assert str(error).startswith("tflite-fp32: convert failed in tflite on op TensorListReserve")


@pytest.mark.fuzz
@given(text=st.text(max_size=400), stage=st.sampled_from(["convert", "check"]))
def test_failure_line_is_always_one_bounded_line(text, stage):
    line = failure_line(stage=stage, converter="onnx", text=text)
    assert len(line.splitlines()) == 1
    assert line.startswith(f"{stage} failed in onnx")
    op, reason = describe(text)
    assert op is None or op in text
    assert len(reason) <= max(len(text), len("no message"))


def test_captured_sends_fd_output_to_the_log_and_restores_it(tmp_path, capfd):
    log = tmp_path / "out" / "converter.log"
    with captured(log, header="tflite-fp32: convert"):
        os.write(1, b"native stdout noise\n")
        os.write(2, b"native stderr noise\n")
        print("python noise", flush=True)
        sys.stderr.write("python stderr\n")
    print("after")
    text = log.read_text()
    assert "==== tflite-fp32: convert" in text
    for noise in ("native stdout noise", "native stderr noise", "python noise", "python stderr"):
        assert noise in text
    out, err = capfd.readouterr()
    assert "noise" not in out + err
    assert "after" in out


def _refs(**outputs):
    return [{name: np.asarray(value, dtype=np.float32) for name, value in outputs.items()}]


def test_class_output_prefers_the_named_probabilities_over_an_earlier_embedding():
    refs = _refs(embedding=[[0.3, -2.0, 4.0]], probabilities=[[0.2, 0.8]], score=[[1.5]])
    assert class_output_of(refs, sorted(refs[0])) == "probabilities"


def test_class_output_falls_back_to_rows_that_are_probabilities():
    refs = _refs(a=[[3.0, -1.0, 2.0]], b=[[0.25, 0.75]])
    assert class_output_of(refs, ["a", "b"]) == "b"
    assert class_output_of(_refs(a=[[3.0, -1.0]], b=[[5.0, 1.0]]), ["a", "b"]) == "a"
    assert class_output_of(_refs(mask=np.zeros((1, 4, 4, 3))), ["mask"]) is None


def test_named_class_output_must_exist():
    refs = _refs(embedding=[[0.3, 4.0]], probabilities=[[0.2, 0.8]])
    assert class_output_of(refs, ["embedding", "probabilities"], "embedding") == "embedding"
    with pytest.raises(ConversionError, match="class output 'probs' is not an output"):
        class_output_of(refs, ["embedding", "probabilities"], "probs")


@pytest.mark.fuzz
@given(
    shapes=st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
        st.lists(st.integers(1, 5), min_size=1, max_size=3),
        min_size=1,
        max_size=4,
    ),
    seed=st.integers(0, 2**16),
)
def test_class_output_is_a_classification_shaped_output_or_none(shapes, seed):
    rng = np.random.default_rng(seed)
    refs = [{name: rng.standard_normal([1, *shape]) for name, shape in shapes.items()}]
    names = sorted(shapes)
    chosen = class_output_of(refs, names)
    fits = [n for n in names if len(shapes[n]) == 1 and shapes[n][0] > 1]
    assert (chosen is None) == (not fits)
    assert chosen is None or chosen in fits


def test_thresholds_round_trip_the_class_output():
    from tf2aif.image.convert.spec import ConvertSpec

    spec = ConvertSpec(
        name="m",
        runtime="onnxruntime",
        precision="fp32",
        backend="onnx",
        model="m",
        thresholds=Thresholds(rtol=1e-3, class_output="probabilities"),
    )
    assert ConvertSpec.from_json(spec.to_json()) == spec


TEXT = TensorSpec(name="text", datatype="BYTES", shape=(-1,))


def test_string_samples_load_as_object_arrays(tmp_path):
    module = tmp_path / "text_samples.py"
    module.write_text(
        "import numpy as np\n"
        "def samples():\n"
        "    yield {'text': 'hello world'}\n"
        "    yield np.array(['two words'])\n"
        "    yield {'text': b'raw bytes'}\n"
    )
    loaded = load_samples(
        PluginRef(module=module.name, function="samples"),
        root=tmp_path,
        inputs=(TEXT,),
        allow_labels=False,
    )
    assert [s["text"].dtype for s in loaded.inputs] == [np.dtype(object)] * 3
    assert [s["text"].tolist() for s in loaded.inputs] == [
        ["hello world"],
        ["two words"],
        [b"raw bytes"],
    ]


def test_numbers_for_a_string_input_are_refused_with_the_input_named(tmp_path):
    module = tmp_path / "bad_text.py"
    module.write_text("import numpy as np\ndef samples():\n    yield np.zeros(1, np.float32)\n")
    with pytest.raises(PluginError, match="input 'text' has dtype float32"):
        load_samples(
            PluginRef(module=module.name, function="samples"),
            root=tmp_path,
            inputs=(TEXT,),
            allow_labels=False,
        )


def test_synthetic_samples_make_strings_for_string_inputs():
    samples = synthetic_samples((TEXT,))
    first = samples.inputs[0]["text"]
    assert first.dtype == object and first.shape == (1,)
    assert all(isinstance(s["text"][0], str) and s["text"][0] for s in samples.inputs)


def _facts(ops=(), dtype="float32"):
    return ModelFacts(
        digest="sha256:00",
        inputs=(TensorFacts(name="x", dtype=dtype, shape=(-1, 32)),),
        outputs=(TensorFacts(name="probabilities", dtype="float32", shape=(-1, 4)),),
        ops=frozenset(ops),
    )


def test_recurrent_models_are_predicted_to_fail_on_tflite_only():
    facts = _facts({"While", "TensorListReserve", "TensorListStack", "MatMul"})
    predicted = predict(facts, ["tf", "tflite", "onnxruntime", "openvino"])
    assert [p.cell for p in predicted] == ["tflite/*"]
    assert "TensorListReserve" in predicted[0].reason
    assert "options.tflite.select_tf_ops: true" in predicted[0].fix


def test_text_vectorization_ops_rule_out_tflite_and_onnxruntime_not_openvino():
    facts = _facts({"StringLower", "StringSplitV2", "StaticRegexReplace"}, dtype="string")
    runtimes = ["tf", "tflite", "onnxruntime", "openvino"]
    predicted = predict(facts, runtimes)
    assert sorted(p.runtime for p in predicted) == ["onnxruntime", "tflite"]
    assert all("runtime tf" in p.fix for p in predicted)
    (note,) = notes(facts, runtimes)
    assert note.startswith("openvino: the string ops (StaticRegexReplace, StringLower, ")
    assert "openvino-tokenizers" in note
    assert notes(facts, ["tf", "tflite"]) == ()  # said only when openvino is planned


def test_a_string_op_the_tokenizers_cannot_convert_rules_openvino_out_too():
    facts = _facts({"StringLower", "StringNGrams"}, dtype="string")
    predicted = predict(facts, ["openvino"])
    assert [p.cell for p in predicted] == ["openvino/*"]
    assert "StringNGrams" in predicted[0].reason
    assert "tokenizers extension converts StaticRegexReplace" in predicted[0].fix
    assert notes(facts, ["openvino"]) == ()


@given(ops=st.sets(st.sampled_from(sorted(OPENVINO_STRING_OPS | {"StringNGrams", "Substr"}))))
def test_openvino_is_either_noted_or_predicted_for_every_string_model(ops):
    facts = _facts(ops | {"MatMul"}, dtype="string")
    predicted = predict(facts, ["openvino"])
    noted = notes(facts, ["openvino"])
    converts = bool(ops) and ops <= OPENVINO_STRING_OPS  # no string op: a bare string input
    assert bool(noted) == converts
    assert bool(predicted) != converts  # one answer, never both, never neither


def test_plain_cnn_ops_predict_nothing():
    assert predict(_facts({"Conv2D", "Relu", "MatMul", "Softmax"}), ["tflite", "onnxruntime"]) == ()


@pytest.mark.fuzz
@given(
    ops=st.frozensets(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh", min_size=1)),
    dtype=st.sampled_from(["float32", "int64", "string"]),
)
def test_facts_round_trip_and_predictions_only_name_planned_runtimes(ops, dtype):
    facts = _facts(ops, dtype)
    assert ModelFacts.from_json(facts.to_json()) == facts
    assert json.loads(facts.to_json())["ops"] == sorted(ops)
    planned = ["tf", "onnxruntime"]
    assert {p.runtime for p in predict(facts, planned)} <= {"onnxruntime"}


def test_plan_names_the_gated_output():
    named = SimpleNamespace(thresholds=Thresholds(class_output="probabilities"))
    default = SimpleNamespace(thresholds=Thresholds())
    plan = SimpleNamespace(variants=(named, default))
    assert gated_output_line(plan) == "fidelity gate: top-1 and accuracy on output probabilities"
    assert "fidelity.class_output" in gated_output_line(SimpleNamespace(variants=(default,)))


def test_int8_keeps_the_nodes_before_the_first_matmul_in_float(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from tf2aif.image.convert.backends.onnx_model import float_front

    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["centred"], name="sub"),
        helper.make_node("Mul", ["centred", "scale"], ["normal"], name="mul"),
        helper.make_node("MatMul", ["normal", "w"], ["hidden"], name="matmul"),
        helper.make_node("Relu", ["hidden"], ["y"], name="relu"),
    ]
    inits = [
        helper.make_tensor(name, TensorProto.FLOAT, dims, [0.5] * size)
        for name, dims, size in (("mean", [3], 3), ("scale", [3], 3), ("w", [3, 2], 6))
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        initializer=inits,
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert float_front(path) == ["sub", "mul"]

"""A subset of the conformance zoo (examples/zoo) through the real conversion pipeline.

The full matrix is benchmarks/zoo.py (docs/models.md); these are the cells that broke before:
Keras 3 exact GELU on ONNX, multi-output gating, string ops, recurrent layers on TFLite; and a
text model on OpenVINO, served and compared with TensorFlow on generated sentences.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scripts import load_script
from tf2aif.errors import ConversionError
from tf2aif.image.convert import ConvertSpec, PluginRef, Thresholds, run_conversion
from tf2aif.image.convert.converter_log import LOG_FILE
from tf2aif.image.convert.source import source_digest
from tf2aif.pipeline.model_inspect import inspect_model, predict

pytestmark = [pytest.mark.conversion, pytest.mark.slow]

ZOO = Path(__file__).resolve().parents[2] / "examples" / "zoo"
MODELS = ("transformer", "multi_io", "string_text", "lstm_text")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    sys.path.insert(0, str(ZOO))
    try:
        from build import build_zoo

        root = tmp_path_factory.mktemp("zoo")
        build_zoo(root, list(MODELS), log=lambda _: None)
    finally:
        sys.path.remove(str(ZOO))
    return root


def _spec(name: str, runtime: str, backend: str, precision: str = "fp32") -> ConvertSpec:
    return ConvertSpec(
        name=name,
        runtime=runtime,
        precision=precision,
        backend=backend,
        model=f"models/{name}",
        calibration=PluginRef(module="samples.py", function=f"calibration_{name}", count=16),
        fidelity_samples=PluginRef(module="samples.py", function=f"check_{name}", count=16),
        thresholds=Thresholds(rtol=1e-3),
    )


def test_transformer_with_exact_gelu_converts_to_onnx(zoo, tmp_path):
    info = run_conversion(_spec("transformer", "onnxruntime", "onnx"), root=zoo, out=tmp_path)
    metrics = info.fidelity["metrics"]
    assert info.fidelity["passed"]
    assert metrics["max_rel_diff"] <= 1e-3
    assert metrics["top1_output"] == "output_0"  # Keras names a single output output_0
    assert info.inputs[0].datatype == "INT64"
    assert (tmp_path / LOG_FILE).is_file()  # converter noise went to the log


def test_multi_output_model_is_gated_on_its_probabilities(zoo, tmp_path):
    info = run_conversion(_spec("multi_io", "onnxruntime", "onnx"), root=zoo, out=tmp_path)
    assert [o.name for o in info.outputs] == ["embedding", "probabilities", "score"]
    assert info.fidelity["metrics"]["top1_output"] == "probabilities"


def test_string_ops_fail_onnx_in_one_line_and_write_no_model(zoo, tmp_path, capfd):
    with pytest.raises(ConversionError) as caught:
        run_conversion(_spec("string_text", "onnxruntime", "onnx"), root=zoo, out=tmp_path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert message.startswith("onnxruntime-fp32: convert failed in tf2onnx on op ")
    assert "StaticRegexReplace" in message or "StringLower" in message
    assert not (tmp_path / "model" / "model.onnx").exists()
    log = tmp_path / LOG_FILE
    assert f"(converter log: {log})" in message and log.stat().st_size > 0
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_recurrent_model_on_tflite_is_predicted_and_fails_naming_the_op(zoo, tmp_path):
    model = zoo / "models" / "lstm_text"
    facts = inspect_model(model, digest=source_digest(model), cache_root=tmp_path)
    assert [p.cell for p in predict(facts, ["tflite", "onnxruntime", "openvino"])] == ["tflite/*"]
    with pytest.raises(ConversionError) as caught:
        run_conversion(_spec("lstm_text", "tflite", "tflite"), root=zoo, out=tmp_path / "out")
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert message.startswith("tflite-fp32: convert failed in tflite on op TensorListReserve")


def test_a_failed_conversion_can_be_rerun_into_the_same_folder(zoo, tmp_path):
    spec = _spec("string_text", "tflite", "tflite")
    for _ in range(2):  # the second run replaces the first one's converter.log
        with pytest.raises(ConversionError, match="on op StringLower"):
            run_conversion(spec, root=zoo, out=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [LOG_FILE]
    assert (tmp_path / LOG_FILE).read_text().count("==== tflite-fp32: convert") == 1


def test_openvino_fp16_says_what_it_computes_in(zoo, tmp_path):
    spec = _spec("multi_io", "openvino", "openvino", "fp16")
    info = run_conversion(spec, root=zoo, out=tmp_path)
    assert info.options["weights_precision"] == "f16"
    assert info.options["inference_precision_hint"] == "f32"
    assert info.options["compute_precision"] == "f32"  # not bf16, whatever the CPU has
    assert info.fidelity["metrics"]["max_rel_diff"] < 0.01


def test_served_latency_is_measured_against_the_served_tf_artifact(zoo, tmp_path, monkeypatch):
    """The zoo's served p50: tf2aif's own server, for the converted artifact and for the tf one;
    a string-input model (warmed up on empty strings) is served too."""
    benchmark = load_script("benchmarks/zoo.py", "zoo_benchmark")
    monkeypatch.syspath_prepend(str(ZOO))  # the zoo's samples.py imports zoo_models
    results = {}
    for name, runtime, backend in [
        ("multi_io", "tf", "tf"),
        ("multi_io", "onnxruntime", "onnx"),
        ("string_text", "tf", "tf"),
    ]:
        out = tmp_path / name / runtime
        cell = benchmark.convert_cell(_spec(name, runtime, backend), zoo, out)
        assert cell["status"] == "ok", cell
        results.setdefault(name, {})[f"{runtime}-fp32"] = cell
    for variant in ("tf-fp32", "onnxruntime-fp32"):
        benchmark._measure_served("multi_io", zoo, results["multi_io"], variant)
    tf_cell, onnx_cell = results["multi_io"]["tf-fp32"], results["multi_io"]["onnxruntime-fp32"]
    assert tf_cell["served_p50_ms"] > 0 and onnx_cell["served_p50_ms"] > 0
    assert onnx_cell["served_p50_native_ms"] == tf_cell["served_p50_ms"]
    row = benchmark._row("multi_io", "onnxruntime-fp32", onnx_cell)
    ratio = onnx_cell["served_p50_ms"] / tf_cell["served_p50_ms"]
    assert f"| {ratio:.2f} |" in row
    benchmark._measure_served("string_text", zoo, results["string_text"], "tf-fp32")
    assert results["string_text"]["tf-fp32"]["served_p50_ms"] > 0


# What a user sends a text model: vocabulary words, unknown words, case, punctuation, runs of
# spaces, non-ASCII letters, emoji, and empty strings.
_WORDS = st.sampled_from(["w1", "W2", "w17", "w199", "w0", "hello", "w3,", "(w4)", "É", "ß", "🙂"])
_TEXTS = st.lists(st.lists(_WORDS, max_size=20).map(" ".join), min_size=1, max_size=4)


@pytest.fixture(scope="module")
def string_model_on_openvino(zoo, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("string-openvino")
    info = run_conversion(_spec("string_text", "openvino", "openvino"), root=zoo, out=out)
    return out, info


def test_string_model_converts_to_openvino_with_the_tokenizers_recorded(
    zoo, string_model_on_openvino, tmp_path
):
    model = zoo / "models" / "string_text"
    facts = inspect_model(model, digest=source_digest(model), cache_root=tmp_path)
    assert [p.runtime for p in predict(facts, ["openvino", "onnxruntime"])] == ["onnxruntime"]
    _, info = string_model_on_openvino
    assert info.fidelity["passed"] and info.fidelity["metrics"]["max_rel_diff"] <= 1e-3
    assert info.options["extensions"] == ["openvino_tokenizers"]  # what the server loads
    assert info.inputs[0].datatype == "BYTES"
    int8 = run_conversion(
        _spec("string_text", "openvino", "openvino", "int8"), root=zoo, out=tmp_path / "int8"
    )
    assert int8.fidelity["passed"] and int8.options["extensions"] == ["openvino_tokenizers"]


def test_served_string_model_answers_what_tensorflow_answers(zoo, string_model_on_openvino):
    tf = pytest.importorskip("tensorflow")
    from server.serving import running_server

    artifact, _ = string_model_on_openvino
    signature = tf.saved_model.load(str(zoo / "models" / "string_text")).signatures[
        "serving_default"
    ]
    with running_server(artifact) as server:
        url = f"{server.url}/v2/models/string_text/infer"

        @settings(max_examples=30, deadline=None)
        @given(texts=_TEXTS)
        def served_like_tensorflow(texts):
            body = {
                "inputs": [
                    {"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}
                ]
            }
            answer = httpx.post(url, json=body, timeout=30)
            assert answer.status_code == 200, answer.text
            (output,) = answer.json()["outputs"]
            served = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
            expected = next(iter(signature(text=tf.constant(texts)).values())).numpy()
            np.testing.assert_allclose(served, expected, rtol=1e-3, atol=1e-5)

        served_like_tensorflow()
        nul = {
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["w1\u0000"]}]
        }
        refused = httpx.post(url, json=nul, timeout=30)
        assert refused.status_code == 400 and "NUL" in refused.json()["error"]
        again = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["w1"]}]}
        assert httpx.post(url, json=again, timeout=30).status_code == 200  # still serving
        _check_strings_over_grpc(server.grpc_address, signature)


def _check_strings_over_grpc(address: str, signature) -> None:
    """The same model through tritonclient.grpc: BYTES in, TensorFlow's answer out; a string
    ending in NUL is INVALID_ARGUMENT, not a shorter string."""
    tf = pytest.importorskip("tensorflow")
    triton = pytest.importorskip("tritonclient.grpc")
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(address)
    texts = np.array(["w1 W2 w3", "", "É w199 🙂"], dtype=object)
    tensor = triton.InferInput("text", [3], "BYTES")
    tensor.set_data_from_numpy(texts)
    served = client.infer("string_text", [tensor]).as_numpy("output_0")
    expected = next(iter(signature(text=tf.constant(texts.tolist())).values())).numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-3, atol=1e-5)
    tensor = triton.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"w1\0"], dtype=object))
    with pytest.raises(InferenceServerException, match="NUL") as caught:
        client.infer("string_text", [tensor])
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"

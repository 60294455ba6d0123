"""Real conversions of the trained digits CNN with every backend runnable here, gated on fidelity.

Every variant is checked on the 300 held-out images against native TensorFlow (acc 0.9633).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from convert_helpers import digits_spec

from tf2aif.image.artifact import ArtifactInfo, TensorSpec, read_artifact
from tf2aif.image.convert import run_conversion

pytestmark = pytest.mark.conversion

IMAGE = TensorSpec(name="image", datatype="FP32", shape=(-1, 8, 8, 1))
PROBABILITIES = TensorSpec(name="output_0", datatype="FP32", shape=(-1, 10))

# (runtime, backend, precision) -> (model file, extra files, max_abs_diff bound measured + margin)
VARIANTS = {
    ("tf", "tf", "fp32"): ("model/saved_model", ["model/saved_model/saved_model.pb"], 1e-6),
    ("tflite", "tflite", "fp32"): ("model/model.tflite", [], 1e-5),
    ("tflite", "tflite", "fp16"): ("model/model.tflite", [], 5e-3),
    ("tflite", "tflite", "int8"): ("model/model.tflite", [], 0.1),
    ("openvino", "openvino", "fp32"): ("model/model.xml", ["model/model.bin"], 1e-5),
    ("openvino", "openvino", "fp16"): ("model/model.xml", ["model/model.bin"], 0.05),
    ("openvino", "openvino", "int8"): ("model/model.xml", ["model/model.bin"], 0.3),
    ("onnxruntime", "onnx", "fp32"): ("model/model.onnx", [], 1e-5),
    ("onnxruntime", "onnx", "fp16"): ("model/model.onnx", [], 5e-3),
    ("onnxruntime", "onnx", "int8"): ("model/model.onnx", [], 0.1),
    ("tensorrt", "tensorrt", "int8"): ("model/model.onnx", ["model/calibration.cache"], 1e-5),
}


@pytest.fixture(scope="module")
def converted(project, tmp_path_factory):
    """Convert each variant once; tests below read the artifacts."""
    out_root = tmp_path_factory.mktemp("artifacts")
    results: dict[tuple[str, str, str], tuple[ArtifactInfo, Path]] = {}

    def convert(key):
        if key not in results:
            runtime, backend, precision = key
            out = out_root / f"{runtime}-{precision}"
            spec = digits_spec(runtime, precision, backend=backend)
            results[key] = (run_conversion(spec, root=project, out=out), out)
        return results[key]

    return convert


@pytest.mark.parametrize("key", list(VARIANTS), ids=lambda k: f"{k[0]}-{k[2]}")
def test_variant_converts_and_passes_the_gate(converted, key):
    runtime, _, precision = key
    model_file, extra_files, max_abs = VARIANTS[key]
    info, out = converted(key)

    assert info.runtime == runtime and info.precision == precision and info.name == "digits"
    assert info.model_file == model_file
    assert (out / model_file).exists()
    for extra in extra_files:
        assert (out / extra).is_file(), extra
    assert info.inputs == (IMAGE,) and info.outputs == (PROBABILITIES,)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", info.source_digest)
    assert info.processing == "plugins/processing.py"
    assert (out / "plugins" / "processing.py").is_file()
    assert {"tensorflow", "numpy"} <= set(info.tools)

    # the JSON on disk is what the server reads: it must equal what was returned
    assert read_artifact(out) == info
    fidelity = json.loads((out / "fidelity.json").read_text())
    assert fidelity == info.fidelity
    metrics = fidelity["metrics"]
    assert fidelity["passed"] is True and fidelity["samples"]["count"] == 300
    assert fidelity["samples"]["labelled"] is True
    assert metrics["nonfinite"] == 0
    assert metrics["top1_agreement"] >= 0.98
    assert metrics["accuracy_reference"] == pytest.approx(0.9633, abs=0.02)
    assert metrics["accuracy_drop"] <= 0.01
    assert 0 <= metrics["max_abs_diff"] <= max_abs
    assert {c["metric"] for c in fidelity["checks"]} == {
        "nonfinite",
        "top1_agreement",
        "accuracy_drop",
    }


def test_runtime_tools_are_recorded(converted):
    assert "openvino" in converted(("openvino", "openvino", "fp32"))[0].tools
    assert {"openvino", "nncf"} <= set(converted(("openvino", "openvino", "int8"))[0].tools)
    assert {"tf2onnx", "onnx", "onnxruntime"} <= set(
        converted(("onnxruntime", "onnx", "int8"))[0].tools
    )
    assert converted(("onnxruntime", "onnx", "fp32"))[0].options["opset"] == 17


def test_quantized_models_are_smaller(converted):
    def size(key):
        info, out = converted(key)
        return sum(p.stat().st_size for p in (out / "model").rglob("*") if p.is_file())

    fp32 = size(("tflite", "tflite", "fp32"))
    assert size(("tflite", "tflite", "fp16")) < 0.6 * fp32
    assert size(("tflite", "tflite", "int8")) < 0.4 * fp32
    assert size(("onnxruntime", "onnx", "int8")) < 0.5 * size(("onnxruntime", "onnx", "fp32"))


def test_tensorrt_calibration_cache_format(converted):
    info, out = converted(("tensorrt", "tensorrt", "int8"))
    assert info.options["calibration_cache"] == "model/calibration.cache"
    assert info.options["precision"] == "int8"
    lines = (out / "model" / "calibration.cache").read_text().splitlines()
    assert lines[0] == "TRT-8601-EntropyCalibration2"
    entries = dict(line.rsplit(": ", 1) for line in lines[1:])
    assert "image" in entries and "output_0" in entries  # graph input and output by ONNX name
    assert len(entries) >= 10  # every node output of the CNN
    for name, hexed in entries.items():
        assert re.fullmatch(r"[0-9a-f]{8}", hexed), (name, hexed)
    image_scale = struct.unpack(">f", bytes.fromhex(entries["image"]))[0]
    # pixels are in [0, 1]: the calibrated amax is at most 1, so the scale is at most 1/127
    assert 0.5 / 127 < image_scale <= 1.0 / 127 + 1e-7
    softmax_scale = struct.unpack(">f", bytes.fromhex(entries["output_0"]))[0]
    assert 0 < softmax_scale <= 1.0 / 127 + 1e-7


def test_tflite_int8_io_records_quantization(project, tmp_path):
    spec = digits_spec("tflite", "int8", options={"int8_io": True})
    info = run_conversion(spec, root=project, out=tmp_path / "out")
    quantization = info.options["io_quantization"]
    assert info.options["int8_io"] is True
    assert set(quantization["inputs"]) == {"image"} and set(quantization["outputs"]) == {"output_0"}
    image = quantization["inputs"]["image"]
    assert image["datatype"] == "INT8" and -128 <= image["zero_point"] <= 127
    assert image["scale"] == pytest.approx(1 / 255, rel=0.05)  # [0, 1] pixels over 256 levels
    # the served contract stays float: the server quantizes with the recorded parameters
    assert info.inputs == (IMAGE,) and info.outputs == (PROBABILITIES,)
    assert info.fidelity["passed"] and info.fidelity["metrics"]["accuracy_drop"] <= 0.01

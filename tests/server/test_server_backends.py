"""Backend selection and the parts of each backend that run without its hardware."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tf2aif.image.artifact import ArtifactInfo, TensorSpec
from tf2aif.image.server.backends import BACKENDS, BackendSettings, backend_class, create_backend
from tf2aif.image.server.backends.base import (
    _pad_rows,
    bucket_for,
    bucket_sizes,
    match_names,
    zeros_for,
)
from tf2aif.image.server.backends.onnxruntime import choose_providers
from tf2aif.image.server.backends.openvino import inference_precision, pick_device
from tf2aif.image.server.backends.tensorrt import EngineKey, engine_paths, load_or_build
from tf2aif.image.server.backends.tflite import Quantization, dequantize, quantize
from tf2aif.image.server.errors import ServerError

SPEC_IN = TensorSpec(name="image", datatype="FP32", shape=(-1, 8, -1, 1))


def _info(runtime: str) -> ArtifactInfo:
    return ArtifactInfo(
        name="m",
        runtime=runtime,
        precision="int8",
        model_file="model/model.onnx",
        inputs=(SPEC_IN,),
        outputs=(TensorSpec(name="y", datatype="FP32", shape=(-1, 10)),),
    )


def test_every_runtime_has_a_backend_class():
    assert set(BACKENDS) == {"tf", "tflite", "openvino", "onnxruntime", "tensorrt", "vitis-ai"}
    for runtime in BACKENDS:
        assert backend_class(runtime).runtime == runtime


def test_unknown_runtime_suggests_the_right_one():
    with pytest.raises(
        ServerError,
        match=r"runtime 'openvin0' has no server backend \(did you mean \"openvino\"\?\)",
    ):
        backend_class("openvin0")


@pytest.mark.parametrize(("runtime", "package"), [("tensorrt", "tensorrt"), ("vitis-ai", "xir")])
def test_hardware_runtimes_say_what_is_missing(tmp_path, runtime, package):
    backend = create_backend(_info(runtime), tmp_path, BackendSettings())
    with pytest.raises(ServerError) as caught:
        backend.load()
    assert f"runtime {runtime!r} needs the Python package {package!r}" in str(caught.value)
    assert f"use the {runtime} image" in str(caught.value)


def test_tensorrt_engine_cache_builds_once_per_key(tmp_path):
    key = EngineKey(
        model_digest="ab" * 32,
        compute_capability="8.6",
        tensorrt_version="10.3.0",
        precision="int8",
        max_batch_size=32,
    )
    builds = []

    def build() -> bytes:
        builds.append(1)
        return b"engine-bytes-%d" % len(builds)

    assert load_or_build(tmp_path, key, build) == b"engine-bytes-1"
    assert load_or_build(tmp_path, key, build) == b"engine-bytes-1"  # from the cache
    assert len(builds) == 1
    engine_file, info_file = engine_paths(tmp_path, key)
    assert engine_file.name == "abababababababab-sm86-trt10.3.0-int8-b32.engine"
    recorded = json.loads(info_file.read_text())
    assert recorded["compute_capability"] == "8.6" and recorded["tensorrt_version"] == "10.3.0"
    assert recorded["bytes"] == len(b"engine-bytes-1")
    orin = dataclasses.replace(key, compute_capability="8.7")
    assert load_or_build(tmp_path, orin, build) == b"engine-bytes-2"  # another GPU: another engine
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "abababababababab-sm86-trt10.3.0-int8-b32.engine",
        "abababababababab-sm86-trt10.3.0-int8-b32.json",
        "abababababababab-sm87-trt10.3.0-int8-b32.engine",
        "abababababababab-sm87-trt10.3.0-int8-b32.json",
    ]


def test_onnxruntime_provider_choice():
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("auto", gpu) == gpu
    assert choose_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers("cuda", gpu) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("CPU", gpu) == ["CPUExecutionProvider"]
    with pytest.raises(ServerError, match="device 'npu' is not an onnxruntime choice"):
        choose_providers("npu", gpu)


def test_openvino_device_and_precision():
    assert pick_device("auto", ["CPU"]) == "CPU"
    assert pick_device("auto", ["CPU", "GPU.0", "GPU.1"]) == "GPU.0"
    assert pick_device("gpu", ["CPU"]) == "GPU"
    assert inference_precision("fp32", {}) == "f32"
    assert inference_precision("int8", {}) is None
    assert inference_precision("fp16", {"inference_precision_hint": "f16"}) == "f16"


def test_int8_io_quantization_round_trip():
    q = Quantization(scale=0.5, zero_point=-3, dtype=np.dtype(np.int8))
    values = np.array([-100.0, -1.0, 0.0, 0.26, 10.0, 100.0], np.float32)
    quantized = quantize(values, q)
    assert quantized.dtype == np.int8
    assert quantized.tolist() == [-128, -5, -3, -2, 17, 127]  # clipped at the int8 range
    np.testing.assert_allclose(dequantize(quantized, q), [-62.5, -1.0, 0.0, 0.5, 10.0, 65.0])


def test_zero_inputs_and_name_matching():
    zeros = zeros_for([SPEC_IN], 4)
    assert zeros["image"].shape == (4, 8, 1, 1) and zeros["image"].dtype == np.float32
    assert match_names(["a", "b"], ["b", "a", "c"], "inputs") == {"a": "a", "b": "b"}
    assert match_names(["image"], ["serving_default_image:0"], "inputs") == {
        "image": "serving_default_image:0"
    }
    with pytest.raises(
        ServerError, match=r"declares outputs \['y'\] but the model has \['a', 'b'\]"
    ):
        match_names(["y"], ["a", "b"], "outputs")


def test_string_inputs_warm_up_and_pad_with_empty_strings():
    """A string model is warmed up on b"" (an int 0 is no string: TensorFlow refuses it)."""
    text = TensorSpec(name="text", datatype="BYTES", shape=(-1, 1))
    blank = zeros_for([text, SPEC_IN], 2)
    assert blank["text"].dtype == object and blank["text"].tolist() == [[b""], [b""]]
    assert blank["image"].dtype == np.float32 and not blank["image"].any()
    padded = _pad_rows(np.array([[b"hello"]], dtype=object), 4)
    assert padded.tolist() == [[b"hello"], [b""], [b""], [b""]]
    assert _pad_rows(np.ones((1, 2), np.int64), 3).tolist() == [[1, 1], [0, 0], [0, 0]]


def test_batch_buckets():
    assert bucket_sizes(32) == [1, 2, 4, 8, 16, 32]
    assert bucket_sizes(12) == [1, 2, 4, 8, 12]
    assert bucket_sizes(1) == [1]
    assert [bucket_for(rows, 12) for rows in (1, 3, 5, 9, 12, 13)] == [1, 4, 8, 12, 12, 13]

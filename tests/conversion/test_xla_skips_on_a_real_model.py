"""A real grouped Conv2D (how Keras 3 builds ConvNeXt's depthwise convolution): inspection finds
its XLA-compiled function, predicts the onnxruntime cell, and tf2onnx indeed cannot convert it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tf2aif.errors import ConversionError
from tf2aif.image.convert import ConvertSpec, Thresholds, run_conversion
from tf2aif.image.convert.source import source_digest
from tf2aif.pipeline.model_inspect import inspect_model, predict

pytestmark = [pytest.mark.conversion, pytest.mark.slow]


@pytest.fixture(scope="module")
def grouped_conv(tmp_path_factory) -> Path:
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 4), name="image"),
            keras.layers.Conv2D(4, 3, padding="same", groups=4),  # depthwise, as ConvNeXt's
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    root = tmp_path_factory.mktemp("grouped")
    model.export(str(root / "models" / "m"), verbose=False)
    return root


def _spec(runtime: str, backend: str) -> ConvertSpec:
    return ConvertSpec(
        name="grouped",
        runtime=runtime,
        precision="fp32",
        backend=backend,
        model="models/m",
        thresholds=Thresholds(rtol=1e-3),
    )


def test_grouped_conv_is_predicted_for_onnxruntime_and_tflite_converts_it(grouped_conv, tmp_path):
    model = grouped_conv / "models" / "m"
    facts = inspect_model(model, digest=source_digest(model), cache_root=tmp_path)
    assert facts.xla_functions and all("conv_xla" in name for name in facts.xla_functions)
    predicted = predict(facts, ["tf", "tflite", "openvino", "onnxruntime"])
    assert [p.cell for p in predicted] == ["onnxruntime/*"]
    with pytest.raises(ConversionError) as caught:
        run_conversion(_spec("onnxruntime", "onnx"), root=grouped_conv, out=tmp_path / "onnx")
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert message.startswith("onnxruntime-fp32: convert failed in tf2onnx on op ")
    assert "StatefulPartitionedCall" in message
    info = run_conversion(_spec("tflite", "tflite"), root=grouped_conv, out=tmp_path / "tflite")
    assert info.fidelity["passed"] and info.fidelity["metrics"]["max_rel_diff"] <= 1e-3

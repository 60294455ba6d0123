"""A real grouped Conv2D (how Keras 3 builds ConvNeXt's depthwise convolution): inspection finds
its XLA-compiled function, plan notes that the onnx export inlines it, and every converter then
takes the model and answers what TensorFlow answers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tf2aif.image.convert import ConvertSpec, Thresholds, run_conversion
from tf2aif.image.convert.source import source_digest
from tf2aif.pipeline.model_inspect import inspect_model, notes, predict

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


def _spec(runtime: str, backend: str, precision: str = "fp32") -> ConvertSpec:
    return ConvertSpec(
        name="grouped",
        runtime=runtime,
        precision=precision,
        backend=backend,
        model="models/m",
        thresholds=Thresholds(rtol=1e-3),
    )


def test_grouped_conv_is_inlined_for_onnx_and_every_runtime_converts_it(grouped_conv, tmp_path):
    model = grouped_conv / "models" / "m"
    facts = inspect_model(model, digest=source_digest(model), cache_root=tmp_path)
    assert facts.xla_functions and all("conv_xla" in name for name in facts.xla_functions)
    runtimes = ["tf", "tflite", "openvino", "onnxruntime"]
    assert predict(facts, runtimes) == ()
    (note,) = notes(facts, runtimes)
    assert note.startswith("onnxruntime: 1 function(s) compiled with XLA") and "inlined" in note
    for runtime, backend, precision in (
        ("onnxruntime", "onnx", "fp32"),
        ("onnxruntime", "onnx", "fp16"),
        ("tflite", "tflite", "fp32"),
    ):
        spec = _spec(runtime, backend, precision)
        if precision == "fp16":
            spec = replace(spec, thresholds=Thresholds(rtol=0.05))
        info = run_conversion(spec, root=grouped_conv, out=tmp_path / f"{runtime}-{precision}")
        assert info.fidelity["passed"], info.fidelity
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(tmp_path / "onnxruntime-fp32" / "model" / "model.onnx")).graph
    (conv,) = [n for n in graph.node if n.op_type == "Conv"]
    assert {a.name: a.i for a in conv.attribute}["group"] == 4  # a grouped Conv, not a call

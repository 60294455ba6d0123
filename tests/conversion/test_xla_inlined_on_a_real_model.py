"""A real grouped Conv2D (how Keras 3 builds ConvNeXt's depthwise convolution): inspection finds
its XLA-compiled function, plan notes that the onnx export inlines it, and every converter then
takes the model and answers what TensorFlow answers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=6, deadline=None)
@given(
    groups=st.sampled_from([2, 4]),
    per_group=st.integers(1, 3),
    kernel=st.sampled_from([1, 3, 5]),
    stride=st.sampled_from([1, 2]),
    padding=st.sampled_from(["same", "valid"]),
    depth=st.integers(1, 2),
)
def test_generated_grouped_convolutions_export_to_onnx_as_tensorflow_computes_them(
    tmp_path_factory, groups, per_group, kernel, stride, padding, depth
):
    """Grouped Conv2D stacks of generated shapes: the inlined ONNX answers like TensorFlow."""
    keras = pytest.importorskip("keras")
    ort = pytest.importorskip("onnxruntime")
    from tf2aif.image.convert.backends.onnx_model import export_onnx

    channels = groups * per_group
    keras.utils.set_random_seed(0)
    layers = [keras.Input(shape=(12, 12, channels), name="image")]
    for _ in range(depth):
        layers.append(
            keras.layers.Conv2D(channels, kernel, strides=stride, padding=padding, groups=groups)
        )
    model = keras.Sequential(layers)
    folder = tmp_path_factory.mktemp("generated")
    model.export(str(folder / "m"), verbose=False)
    facts = inspect_model(folder / "m", digest=source_digest(folder / "m"), cache_root=folder)
    assert facts.xla_functions  # what the export has to inline
    export_onnx(folder / "m", folder / "m.onnx", opset=17)
    session = ort.InferenceSession(str(folder / "m.onnx"), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(1).standard_normal((2, 12, 12, channels)).astype(np.float32)
    (served,) = session.run(None, {session.get_inputs()[0].name: image})
    np.testing.assert_allclose(served, model(image).numpy(), rtol=1e-4, atol=1e-5)

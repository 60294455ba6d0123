"""Precision fallback on real conversions: a tiny MLP on raw features that full int8 breaks.

The model normalises six raw features whose ranges differ by five orders of magnitude (0.1 to
24,000) inside itself, and its label depends on the two smallest. Quantizing the raw input with
one int8 scale erases those two, so full int8 loses about half its accuracy; keeping the
normalisation and the first layer float (candidate `float-io`) brings it back.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tf2aif.errors import FidelityError
from tf2aif.image.artifact import ARTIFACT_FILE, read_artifact
from tf2aif.image.convert import fidelity, run_conversion
from tf2aif.image.convert.runners import runner_for, signature_runner
from tf2aif.image.convert.samples import load_samples
from tf2aif.image.convert.source import load_source
from tf2aif.image.convert.spec import ConvertSpec, PluginRef, Thresholds
from tf2aif.pipeline.build import fidelity_labels

pytestmark = pytest.mark.conversion

SCALES = (0.05, 0.2, 1.0, 30.0, 500.0, 4000.0)

SAMPLES = textwrap.dedent(
    f"""\
    import numpy as np

    SCALES = np.array({SCALES!r}, np.float32)


    def data(n, seed):
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, 6)).astype(np.float32)
        return (z + 3.0) * SCALES, (z[:, 0] - z[:, 1] > 0).astype(np.int64)


    def calibration():
        x, _ = data(64, 2)
        for row in x:
            yield {{"features": row}}


    def held_out():
        x, y = data(200, 1)
        for row, label in zip(x, y):
            yield {{"features": row}}, int(label)
    """
)

GATE = Thresholds(max_accuracy_drop=0.01)


@pytest.fixture(scope="module")
def raw_mlp(tmp_path_factory) -> Path:
    """A project folder: models/mlp (trained, accuracy about 0.99) and samples.py."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    root = tmp_path_factory.mktemp("raw-mlp")
    (root / "samples.py").write_text(SAMPLES)
    namespace: dict = {}
    exec(SAMPLES, namespace)  # the same data the plug-in functions yield
    x, y = namespace["data"](600, 0)
    keras.utils.set_random_seed(0)
    features = keras.Input((6,), name="features")
    normalize = keras.layers.Normalization()
    normalize.adapt(x)
    hidden = keras.layers.Dense(16, activation="relu")(normalize(features))
    outputs = keras.layers.Dense(2, activation="softmax", name="probabilities")(hidden)
    model = keras.Model(features, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=40, batch_size=32, verbose=0)
    x_held, y_held = namespace["data"](200, 1)
    assert model.evaluate(x_held, y_held, verbose=0)[1] > 0.95
    model.export(str(root / "models" / "mlp"), verbose=False)
    return root


def spec(runtime: str, backend: str, **changes) -> ConvertSpec:
    fields = {
        "name": "mlp",
        "runtime": runtime,
        "precision": "int8",
        "backend": backend,
        "model": "models/mlp",
        "calibration": PluginRef(module="samples.py", function="calibration"),
        "fidelity_samples": PluginRef(module="samples.py", function="held_out"),
        "thresholds": GATE,
    }
    return ConvertSpec(**(fields | changes))


def gate_on_disk(root: Path, out: Path, thresholds: Thresholds) -> bool:
    """Measure the artifact as it lies in `out` again, independently of its fidelity.json."""
    info = read_artifact(out)
    source = load_source(root / "models/mlp", signature="serving_default", workdir=out.parent)
    samples = load_samples(
        PluginRef(module="samples.py", function="held_out"),
        root=root,
        inputs=source.inputs,
        allow_labels=True,
    )
    runtime = "onnxruntime" if info.runtime == "onnxruntime" else info.runtime
    metrics = fidelity.measure(
        signature_runner(source.function), runner_for(runtime, out, info), samples
    )
    return all(check.passed is not False for check in fidelity.checks_for(metrics, thresholds))


# onnx's full int8 keeps the nodes before the first MatMul float by default, which saves this
# model; without that, full int8 breaks it as TFLite's does
@pytest.mark.parametrize(
    ("runtime", "backend", "options"),
    [("tflite", "tflite", {}), ("onnxruntime", "onnx", {"int8_float_front": False})],
)
def test_full_int8_fails_and_the_published_fallback_passes_the_gate(
    raw_mlp, tmp_path, runtime, backend, options
):
    out = tmp_path / runtime
    info = run_conversion(spec(runtime, backend, options=options), root=raw_mlp, out=out)
    detail = info.fidelity["fallback"]
    tried = detail["tried"]
    assert tried[0]["candidate"] == "full" and not tried[0]["passed"]
    assert tried[0]["figure"].startswith("accuracy_drop ")
    assert float(tried[0]["figure"].split()[1]) > 0.01
    assert tried[-1]["passed"] and tried[-1]["candidate"] == detail["candidate"] != "full"
    assert info.fidelity["passed"] and info.fidelity["metrics"]["accuracy_drop"] <= 0.01
    # what stayed float is said in the artifact's metadata and in fidelity.json (the labels)
    assert detail["float_layers"] and detail["summary"].startswith(f"int8 ({detail['candidate']}),")
    written = json.loads((out / ARTIFACT_FILE).read_text())
    assert written["options"]["precision_fallback"]["summary"] == detail["summary"]
    # ... in the image labels, and in what `tf2aif convert` prints
    assert fidelity_labels(out)["io.tf2aif.precision.detail"] == detail["summary"]
    text = fidelity.format_report(info.fidelity)
    assert f"candidate full: {tried[0]['figure']}" in text
    assert f"published: {detail['summary']}" in text
    # the model in the folder is the candidate that passed, not an earlier one
    assert gate_on_disk(raw_mlp, out, GATE)


def test_with_fallback_off_full_int8_is_built_once_and_fails_the_gate(raw_mlp, tmp_path):
    off = spec("tflite", "tflite", thresholds=Thresholds(max_accuracy_drop=0.01, fallback=False))
    with pytest.raises(FidelityError) as caught:
        run_conversion(off, root=raw_mlp, out=tmp_path / "off")
    assert "accuracy_drop" in str(caught.value)
    assert "no candidate passed" not in str(caught.value)
    report = json.loads((tmp_path / "off" / "fidelity.json").read_text())
    assert not report["passed"] and "fallback" not in report


@pytest.mark.parametrize(
    ("runtime", "backend", "precision", "candidates"),
    [
        ("tflite", "tflite", "int8", ("full", "float-io", "float-sensitive")),
        ("onnxruntime", "onnx", "int8", ("full", "float-io", "float-sensitive")),
        ("onnxruntime", "onnx", "fp16", ("full", "float-sensitive")),
        ("openvino", "openvino", "int8", ("full", "float-io", "float-sensitive")),
        ("openvino", "openvino", "fp16", ("full", "float-sensitive")),
    ],
)
def test_no_candidate_passing_means_the_variant_fails_naming_each_candidate(
    raw_mlp, tmp_path, runtime, backend, precision, candidates
):
    impossible = Thresholds(atol=0.0)  # no quantized model reproduces float outputs exactly
    out = tmp_path / "none"
    with pytest.raises(FidelityError) as caught:
        run_conversion(
            spec(runtime, backend, precision=precision, thresholds=impossible),
            root=raw_mlp,
            out=out,
        )
    first = str(caught.value).splitlines()[0]
    assert first.startswith(
        f"{runtime}-{precision}: no candidate passed the fidelity gate (full: max_abs_diff "
    )
    for candidate in candidates:
        assert f"{candidate}: max_abs_diff " in first
    report = json.loads((out / "fidelity.json").read_text())
    assert report["passed"] is False
    assert [t["candidate"] for t in report["fallback"]["tried"]] == list(candidates)
    assert not any(t["passed"] for t in report["fallback"]["tried"])
    assert np.isfinite(report["metrics"]["max_abs_diff"])
    # every candidate after the first kept something float, and said what
    assert all(t["float_layers"] for t in report["fallback"]["tried"][1:])


def test_per_output_limits_gate_a_real_conversion_by_output_name(raw_mlp, tmp_path):
    from tf2aif.errors import ConversionError
    from tf2aif.image.convert.spec import OutputThresholds

    # a gate-wide rtol no conversion meets, replaced for the model's one output by its own
    own = OutputThresholds(name="output_0", atol=1e-3, rtol=1e-3)
    fp32 = spec("tflite", "tflite", precision="fp32", thresholds=Thresholds(rtol=1e-12))
    with pytest.raises(FidelityError, match="max_rel_diff"):
        run_conversion(fp32, root=raw_mlp, out=tmp_path / "strict")
    limits = Thresholds(rtol=1e-12, outputs=(own,))
    info = run_conversion(
        spec("tflite", "tflite", precision="fp32", thresholds=limits),
        root=raw_mlp,
        out=tmp_path / "fp32",
    )
    checks = {c["metric"]: (c["threshold"], c["passed"]) for c in info.fidelity["checks"]}
    assert checks == {
        "nonfinite": (0.0, True),
        "max_abs_diff[output_0]": (1e-3, True),
        "max_rel_diff[output_0]": (1e-3, True),
    }
    assert info.fidelity["metrics"]["outputs"]["output_0"]["max_rel_diff"] > 1e-12
    unknown = Thresholds(outputs=(OutputThresholds(name="probs", atol=1e-3),))
    with pytest.raises(ConversionError, match="'probs', which is not an output of the model"):
        run_conversion(
            spec("tflite", "tflite", precision="fp32", thresholds=unknown),
            root=raw_mlp,
            out=tmp_path / "unknown",
        )


DEPTHWISE_SAMPLES = textwrap.dedent(
    """\
    import numpy as np


    def images():
        rng = np.random.default_rng(3)
        for _ in range(16):
            yield {"image": rng.random((16, 16, 3), dtype=np.float32)}
    """
)


def test_openvino_float_sensitive_keeps_every_depthwise_convolution_float(tmp_path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    (tmp_path / "samples.py").write_text(DEPTHWISE_SAMPLES)
    keras.utils.set_random_seed(0)
    image = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, name="stem")(image)
    x = keras.layers.DepthwiseConv2D(3, name="dw_a")(x)
    x = keras.layers.DepthwiseConv2D(3, name="dw_b")(x)
    x = keras.layers.Conv2D(8, 1, name="pointwise")(x)
    outputs = keras.layers.Dense(4, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(image, outputs).export(str(tmp_path / "models" / "mlp"), verbose=False)
    plugins = {
        "calibration": PluginRef(module="samples.py", function="images"),
        "fidelity_samples": PluginRef(module="samples.py", function="images"),
    }
    impossible = Thresholds(atol=0.0)  # every candidate is built and reported
    with pytest.raises(FidelityError):
        run_conversion(
            spec("openvino", "openvino", thresholds=impossible, **plugins),
            root=tmp_path,
            out=tmp_path / "out",
        )
    tried = json.loads((tmp_path / "out" / "fidelity.json").read_text())["fallback"]["tried"]
    by_candidate = {t["candidate"]: t["float_layers"] for t in tried}
    # OpenVINO names the two depthwise convolutions GroupConvolution_<n>
    depthwise = [n for n in by_candidate["float-sensitive"] if n.startswith("GroupConvolution")]
    assert len(depthwise) == 2, by_candidate["float-sensitive"]
    assert not [n for n in by_candidate["float-io"] if n.startswith("GroupConvolution")]
    # each candidate converts anew, so op numbers differ: count what float-io keeps on top
    assert len(by_candidate["float-sensitive"]) == len(by_candidate["float-io"]) + 2

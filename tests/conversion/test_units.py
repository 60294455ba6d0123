"""Fast checks of the pieces around the converters (no TensorFlow needed)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from tf2aif.errors import ConversionError, PluginError
from tf2aif.image.artifact import TensorSpec
from tf2aif.image.convert import registry
from tf2aif.image.convert.backends.tensorrt import cache_header, calibration_cache_text
from tf2aif.image.convert.backends.vitis_ai import arch_json, compile_argv
from tf2aif.image.convert.fidelity import Check, checks_for, format_table, measure
from tf2aif.image.convert.samples import Samples, load_samples
from tf2aif.image.convert.spec import ConvertSpec, PluginRef, Thresholds

pytestmark = pytest.mark.conversion  # fast, but part of the conversion session

IMAGE = (TensorSpec(name="image", datatype="FP32", shape=(-1, 8, 8, 1)),)


def test_registry_has_every_builtin_backend_and_hands_out_copies():
    backends = registry.get()
    assert set(backends) == {"tf", "tflite", "openvino", "onnx", "tensorrt", "vitis-ai"}
    backends.pop("tf")
    assert "tf" in registry.get()


def test_registry_refuses_duplicates_and_resets_to_builtins():
    try:

        @registry.register("custom")
        def custom(job):
            return None

        assert registry.lookup("custom") is custom
        with pytest.raises(ValueError, match="'tflite' is registered twice"):
            registry.register("tflite")(custom)
    finally:
        registry.reset()
    assert "custom" not in registry.get() and "tflite" in registry.get()


def test_lookup_suggests_a_close_name():
    with pytest.raises(ConversionError, match='did you mean "openvino"'):
        registry.lookup("openvno")


def _samples(tmp_path: Path, body: str, **kwargs) -> Samples:
    (tmp_path / "cal.py").write_text("import numpy as np\n" + body)
    ref = PluginRef(module="cal.py", function="samples", count=kwargs.pop("count", None))
    return load_samples(ref, root=tmp_path, inputs=IMAGE, **kwargs)


def test_samples_are_normalised_to_batch_one_float32_dicts(tmp_path):
    samples = _samples(
        tmp_path,
        "def samples():\n"
        "    yield np.ones((8, 8, 1))\n"  # unbatched float64 array
        "    yield {'image': np.zeros((1, 8, 8, 1), dtype=np.uint8)}\n"  # batched dict, ints
        "    yield [[[0.5]] * 8] * 8\n",  # nested lists
        allow_labels=False,
    )
    assert len(samples) == 3 and samples.labels is None
    for sample in samples.inputs:
        assert list(sample) == ["image"]
        assert sample["image"].shape == (1, 8, 8, 1) and sample["image"].dtype == np.float32
    assert samples.inputs[2]["image"][0, 0, 0, 0] == 0.5
    assert samples.source == "cal.py:samples"


def test_count_bounds_samples_and_labels_are_kept(tmp_path):
    body = "def samples():\n    for i in range(100):\n        yield np.zeros((8, 8, 1)), i % 10\n"
    assert len(_samples(tmp_path, body, allow_labels=True)) == 100  # no count: all of them
    samples = _samples(tmp_path, body, count=12, allow_labels=True)
    assert len(samples) == 12 and samples.labels == tuple(i % 10 for i in range(12))
    with pytest.raises(PluginError, match="calibration samples must be inputs only"):
        _samples(tmp_path, body, allow_labels=False)


def test_non_iterable_return_is_a_plugin_error(tmp_path):
    with pytest.raises(
        PluginError, match="cal.py:samples: must return or yield samples, returned int"
    ):
        _samples(tmp_path, "def samples():\n    return 3\n", allow_labels=False)


def test_fidelity_metrics_on_known_outputs():
    reference = {0: [0.7, 0.2, 0.1], 1: [0.1, 0.8, 0.1], 2: [0.3, 0.3, 0.4], 3: [0.5, 0.4, 0.1]}
    # the candidate flips sample 3's top-1 and is off by 0.2 there
    candidate = dict(reference) | {3: [0.3, 0.6, 0.1]}
    samples = Samples(
        inputs=tuple({"i": np.array([[k]])} for k in range(4)), labels=(0, 1, 2, 0), source="t"
    )

    def run(table):
        return lambda inputs: {"p": np.array([table[int(inputs["i"][0, 0])]])}

    metrics = measure(run(reference), run(candidate), samples)
    assert metrics["max_abs_diff"] == pytest.approx(0.2)
    assert metrics["max_rel_diff"] == pytest.approx(0.2 / 0.8)
    assert metrics["top1_agreement"] == 0.75 and metrics["nonfinite"] == 0
    assert metrics["accuracy_reference"] == 1.0 and metrics["accuracy"] == 0.75
    assert metrics["accuracy_drop"] == pytest.approx(0.25)


def test_nonfinite_outputs_always_fail():
    samples = Samples(inputs=({"i": np.zeros(1)},), labels=None, source="t")
    metrics = measure(
        lambda x: {"p": np.array([[1.0, 2.0]])}, lambda x: {"p": np.array([[np.nan, 2.0]])}, samples
    )
    assert metrics["nonfinite"] == 1
    (check,) = checks_for(metrics, Thresholds())
    assert check.metric == "nonfinite" and check.passed is False


def test_unmeasurable_check_is_reported_not_failed():
    checks = checks_for({"nonfinite": 0, "max_abs_diff": 0.1}, Thresholds(max_accuracy_drop=0.01))
    assert [c.passed for c in checks] == [True, None]
    table = format_table([("v", c) for c in checks]).splitlines()
    assert table[2].split() == ["v", "accuracy_drop", "n/a", "<=", "0.01", "not", "measured"]


def test_fidelity_table_layout():
    rows = [
        ("onnxruntime-int8", Check(metric="max_abs_diff", measured=0.0931, op="<=", threshold=0.05))
    ]
    assert format_table(rows) == (
        "variant           metric        measured  threshold  result\n"
        "onnxruntime-int8  max_abs_diff  0.0931    <= 0.05    FAIL"
    )


def test_tensorrt_cache_text():
    assert cache_header("8.6.1") == "TRT-8601-EntropyCalibration2"
    assert cache_header("8.5.2") == "TRT-8502-EntropyCalibration2"
    assert cache_header("10.3.0") == "TRT-100300-EntropyCalibration2"
    text = calibration_cache_text({"x": (-0.5, 1.0), "a/b:0": (0.0, 2.54)}, version="8.6.1")
    lines = text.splitlines()
    assert lines[0] == "TRT-8601-EntropyCalibration2"
    assert lines[1] == f"a/b:0: {struct.pack('>f', 0.02).hex()}" == "a/b:0: 3ca3d70a"
    assert lines[2] == "x: 3c010204"  # 1/127, as TensorRT writes it
    assert text.endswith("\n")


def test_vitis_ai_compile_command():
    assert arch_json({"dpu_arch": "DPUCAHX8H", "card": "u50"}) == Path(
        "/opt/vitis_ai/compiler/arch/DPUCAHX8H/U50/arch.json"
    )
    assert arch_json({"card": "U280"}).parts[-2:] == ("U280", "arch.json")
    assert arch_json({"arch_json": "/x/arch.json"}) == Path("/x/arch.json")
    with pytest.raises(ConversionError, match="unknown Alveo card 'VCK5000'"):
        arch_json({"card": "vck5000"})
    assert compile_argv(Path("q.h5"), Path("a.json"), Path("out")) == [
        "vai_c_tensorflow2",
        "-m",
        "q.h5",
        "-a",
        "a.json",
        "-o",
        "out",
        "-n",
        "model",
    ]


def test_convert_spec_json_round_trip():
    spec = ConvertSpec(
        name="digits",
        runtime="tflite",
        precision="int8",
        backend="tflite",
        model="models/digits",
        calibration=PluginRef(module="app/calibration.py", function="samples", count=200),
        thresholds=Thresholds(atol=0.05),
        options={"int8_io": True},
    )
    assert ConvertSpec.from_json(spec.to_json()) == spec


def test_openvino_telemetry_is_declined_only_inside(monkeypatch):
    from tf2aif.image.convert.backends.openvino_ir import telemetry_declined

    monkeypatch.delenv("CI", raising=False)
    with telemetry_declined():
        assert os.environ["CI"] == "true"
    assert "CI" not in os.environ
    monkeypatch.setenv("CI", "false")
    with telemetry_declined():
        assert os.environ["CI"] == "true"
    assert os.environ["CI"] == "false"

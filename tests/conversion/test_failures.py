"""What a user sees when a conversion cannot pass: fidelity table, plug-in errors, bad inputs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from convert_helpers import digits_spec

from tf2aif.errors import ConversionError, FidelityError, PluginError
from tf2aif.image.convert import PluginRef, Thresholds, run_conversion

pytestmark = pytest.mark.conversion


def test_broken_threshold_raises_fidelity_error_with_table(project, tmp_path):
    spec = digits_spec("tflite", "fp16", thresholds=Thresholds(atol=1e-7, min_top1_agreement=0.98))
    with pytest.raises(FidelityError) as caught:
        run_conversion(spec, root=project, out=tmp_path / "out")
    text = str(caught.value)
    assert caught.value.variant == "tflite-fp16"
    assert text.startswith(
        "tflite-fp16: fidelity gate failed (300 samples from app/calibration.py:held_out)"
    )
    lines = text.splitlines()
    assert lines[1].split() == ["variant", "metric", "measured", "threshold", "result"]
    failing = next(line for line in lines if " max_abs_diff " in line).split()
    assert failing[0] == "tflite-fp16" and failing[3:] == ["<=", "1e-07", "FAIL"]
    assert float(failing[2]) > 1e-7
    passing = next(line for line in lines if " top1_agreement " in line).split()
    assert passing[3:] == [">=", "0.98", "ok"]
    # the artifact is still written, marked as failed, so it can be inspected
    assert (tmp_path / "out" / "fidelity.json").is_file()
    assert '"passed": false' in (tmp_path / "out" / "fidelity.json").read_text()


def _calibration(project, tmp_path, source: str, function: str = "samples") -> PluginRef:
    module = tmp_path / "broken_calibration.py"
    module.write_text(source)
    return PluginRef(
        module=str(module.relative_to(project)) if module.is_relative_to(project) else str(module),
        function=function,
        count=10,
    )


@pytest.mark.parametrize(
    ("source", "function", "expected"),
    [
        ("def samples(:\n    pass\n", "samples", "import failed: SyntaxError"),
        (
            "def calibrate():\n    yield {}\n",
            "samples",
            "has no function 'samples'; callables defined there: calibrate",
        ),
        (
            "import numpy as np\ndef samples():\n    yield {'imgae': np.zeros((8, 8, 1))}\n",
            "samples",
            "sample 0: unknown input 'imgae' (did you mean \"image\"?)",
        ),
        (
            "import numpy as np\ndef samples():\n    yield np.zeros((1, 28, 28, 1))\n",
            "samples",
            "sample 0: input 'image' has shape [1, 28, 28, 1]; expected [8, 8, 1]",
        ),
        (
            "import numpy as np\ndef samples():\n    yield np.array(['a'] * 64).reshape(8, 8, 1)\n",
            "samples",
            "input 'image' has dtype <U1, the model takes float32",
        ),
        ("def samples():\n    return iter(())\n", "samples", "yielded no samples"),
        (
            "def samples():\n    raise RuntimeError('no data here')\n    yield\n",
            "samples",
            "raised RuntimeError: no data here",
        ),
    ],
    ids=[
        "syntax-error",
        "missing-function",
        "wrong-input-name",
        "wrong-shape",
        "wrong-dtype",
        "empty",
        "raises",
    ],
)
def test_broken_calibration_module_names_the_file(project, tmp_path, source, function, expected):
    plugin = _calibration(project, tmp_path, source, function)
    spec = digits_spec("tflite", "int8", calibration=plugin)
    with pytest.raises(PluginError) as caught:
        run_conversion(spec, root=project, out=tmp_path / "out")
    text = str(caught.value)
    assert "broken_calibration.py" in text
    assert expected in text
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-written is left behind


def test_calibration_is_required_for_int8(project, tmp_path):
    spec = digits_spec("onnxruntime", "int8", backend="onnx", calibration=None)
    with pytest.raises(PluginError, match="onnxruntime-int8: int8 conversion needs calibration"):
        run_conversion(spec, root=project, out=tmp_path / "out")


def test_unknown_backend_suggests_the_right_one(project, tmp_path):
    with pytest.raises(
        ConversionError, match="unknown converter backend 'tflit' \\(did you mean \"tflite\"\\?\\)"
    ):
        run_conversion(digits_spec("tflite", "fp32", backend="tflit"), root=project, out=tmp_path)


def test_tf_backend_serves_fp32_only(project, tmp_path):
    with pytest.raises(ConversionError, match="tf-int8: the tf backend converts fp32, not 'int8'"):
        run_conversion(digits_spec("tf", "int8"), root=project, out=tmp_path / "out")


def test_vitis_ai_needs_the_vitis_image(project, tmp_path):
    spec = digits_spec("vitis-ai", "int8")
    with pytest.raises(
        ConversionError,
        match="vitis-ai-int8: the Vitis AI quantizer .* is not installed; run this conversion in the Vitis AI TensorFlow 2 image",
    ):
        run_conversion(spec, root=project, out=tmp_path / "out")


def test_missing_model_and_non_artifact_output_are_refused(project, tmp_path):
    with pytest.raises(ConversionError, match="model not found"):
        run_conversion(
            replace(digits_spec("tflite", "fp32"), model="models/none"),
            root=project,
            out=tmp_path / "a",
        )
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(ConversionError, match="not empty and holds no tf2aif-artifact.json"):
        run_conversion(digits_spec("tflite", "fp32"), root=project, out=busy)
    assert (busy / "notes.txt").read_text() == "keep me"

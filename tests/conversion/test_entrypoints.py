"""The build-stage entry point, the `tf2aif convert` command, and other model sources."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from convert_helpers import REPO_BUILDER, digits_spec

from tf2aif.cli.main import main as cli_main
from tf2aif.image.artifact import read_artifact
from tf2aif.image.convert import Thresholds, run_conversion

pytestmark = pytest.mark.conversion

REPO = Path(__file__).resolve().parents[2]


def _stage(spec_json: str, root: Path, out: Path) -> subprocess.CompletedProcess:
    """Run the conversion exactly as the Dockerfile's RUN line does."""
    env = os.environ | {"PYTHONPATH": str(REPO_BUILDER), "TF_CPP_MIN_LOG_LEVEL": "2"}
    argv = [
        sys.executable,
        "-m",
        "tf2aif.image.convert",
        "--spec",
        spec_json,
        "--root",
        str(root),
        "--out",
        str(out),
    ]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_build_stage_entry_point_prints_the_fidelity_table(project, tmp_path):
    done = _stage(digits_spec("tflite", "fp32").to_json(), project, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("tflite-fp32: converted in ")
    assert lines[0].endswith(f"-> {tmp_path / 'out' / 'model' / 'model.tflite'}")
    assert (
        "tflite-fp32: fidelity on 300 samples from app/calibration.py:held_out, labelled"
        in lines[1]
    )
    assert lines[3].split() == ["variant", "metric", "measured", "threshold", "result"]
    assert lines[-1] == "fidelity: passed"
    assert read_artifact(tmp_path / "out").fidelity["passed"] is True


def test_build_stage_fails_with_variant_and_reason(project, tmp_path):
    spec = digits_spec("tflite", "fp16", thresholds=Thresholds(atol=1e-9))
    done = _stage(spec.to_json(), project, tmp_path / "out")
    assert done.returncode == 1
    assert "error: tflite-fp16: fidelity gate failed (300 samples" in done.stderr
    assert "max_abs_diff" in done.stderr and "FAIL" in done.stderr


def test_build_stage_rejects_a_bad_spec(tmp_path):
    done = _stage('{"name": "x"}', tmp_path, tmp_path / "out")
    assert done.returncode == 1
    assert done.stderr.startswith("error: invalid --spec: TypeError")


def test_cli_convert_from_spec_json(project, tmp_path, capsys):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(digits_spec("onnxruntime", "fp32", backend="onnx").to_json())
    code = cli_main(
        [
            "convert",
            "--spec-json",
            str(spec_file),
            "--root",
            str(project),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    output = capsys.readouterr().out
    assert "fidelity of onnxruntime-fp32 on 300 samples" in output
    assert "fidelity: passed" in output
    assert read_artifact(tmp_path / "out").runtime == "onnxruntime"


def test_cli_convert_a_manifest_variant(project, tmp_path, capsys):
    shutil.copy(REPO / "tf2aif.yaml", project / "tf2aif.yaml")
    code = cli_main(
        [
            "convert",
            str(project / "tf2aif.yaml"),
            "--variant",
            "cpu/tflite/int8",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0, capsys.readouterr()
    info = read_artifact(tmp_path / "out")
    assert (info.runtime, info.precision, info.name) == ("tflite", "int8", "digits")
    # the demo manifest's gate: atol 0.05, top-1 >= 0.98, accuracy drop <= 0.01
    checks = {c["metric"]: c for c in info.fidelity["checks"]}
    assert checks["max_abs_diff"]["threshold"] == 0.05 and checks["max_abs_diff"]["passed"]
    assert checks["accuracy_drop"]["passed"] and info.fidelity["samples"]["count"] == 300


def test_cli_convert_unknown_variant_lists_the_planned_ones(project, tmp_path, capsys):
    shutil.copy(REPO / "tf2aif.yaml", project / "tf2aif.yaml")
    code = cli_main(
        [
            "convert",
            str(project / "tf2aif.yaml"),
            "--variant",
            "gpu/tensorrt/int8",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "variant 'gpu/tensorrt/int8' is not in the plan" in err and "cpu/tflite/int8" in err


def test_keras_file_source(project, digits_train, tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    keras_file = project / "models" / "untrained.keras"
    digits_train.build_model().save(keras_file)
    for runtime in ("tflite", "openvino"):
        spec = digits_spec(
            runtime, "fp32", model="models/untrained.keras", thresholds=Thresholds(atol=1e-4)
        )
        info = run_conversion(spec, root=project, out=tmp_path / runtime)
        assert info.fidelity["passed"] and info.fidelity["metrics"]["max_abs_diff"] < 1e-4
        assert info.inputs[0].name == "image"


def test_other_signature_and_synthetic_samples(project, tmp_path):
    spec = digits_spec(
        "tflite",
        "fp32",
        signature="serve",
        calibration=None,
        fidelity_samples=None,
        thresholds=Thresholds(atol=1e-5),
    )
    info = run_conversion(spec, root=project, out=tmp_path / "out")
    assert info.fidelity["samples"] == {"count": 32, "source": "synthetic", "labelled": False}
    assert info.fidelity["passed"] and "accuracy" not in info.fidelity["metrics"]

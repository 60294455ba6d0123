"""Real converted digits artifacts for the server tests, made with the smallest direct tool calls.

`make_artifacts(root)` trains the digits CNN once (examples/digits/train.py, ~8 s) and converts
it to every runtime the server can run here; each artifact directory follows tf2aif/artifact.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tf2aif.artifact import ArtifactInfo, TensorSpec, write_artifact

REPO = Path(__file__).resolve().parents[2]
RUNTIMES = ("tf", "tflite", "openvino", "onnxruntime")
INPUTS = (TensorSpec(name="image", datatype="FP32", shape=(-1, 8, 8, 1)),)
OUTPUTS = (TensorSpec(name="output_0", datatype="FP32", shape=(-1, 10)),)

sys.path.insert(0, str(REPO / "examples" / "digits"))
import train as digits_train  # noqa: E402

__all__ = ["RUNTIMES", "digits_train", "make_artifact", "make_artifacts"]


def train_saved_model(out: Path) -> Path:
    digits_train.train(out)
    return out


def _convert_tflite(saved_model: Path, model_dir: Path) -> str:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    (model_dir / "model.tflite").write_bytes(converter.convert())
    return "model/model.tflite"


def _convert_openvino(saved_model: Path, model_dir: Path) -> str:
    import openvino as ov

    ov.save_model(
        ov.convert_model(str(saved_model)), model_dir / "model.xml", compress_to_fp16=False
    )
    return "model/model.xml"


def _convert_onnx(saved_model: Path, model_dir: Path) -> str:
    command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model)]
    command += ["--opset", "17", "--output", str(model_dir / "model.onnx")]
    subprocess.run(
        command, check=True, capture_output=True, env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    )
    return "model/model.onnx"


def _copy_saved_model(saved_model: Path, model_dir: Path) -> str:
    shutil.copytree(saved_model, model_dir / "saved_model")
    return "model/saved_model"


CONVERTERS = {
    "tf": _copy_saved_model,
    "tflite": _convert_tflite,
    "openvino": _convert_openvino,
    "onnxruntime": _convert_onnx,
}


def make_artifact(saved_model: Path, runtime: str, out: Path) -> Path:
    """Convert the SavedModel for one runtime into the artifact directory `out`."""
    (out / "model").mkdir(parents=True)
    model_file = CONVERTERS[runtime](saved_model, out / "model")
    shutil.copytree(REPO / "app", out / "plugins")
    info = ArtifactInfo(
        name="digits",
        runtime=runtime,
        precision="fp32",
        model_file=model_file,
        inputs=INPUTS,
        outputs=OUTPUTS,
        processing="plugins/processing.py",
    )
    write_artifact(out, info)
    return out


def make_artifacts(root: Path) -> dict[str, Path]:
    saved_model = train_saved_model(root / "saved_model")
    return {runtime: make_artifact(saved_model, runtime, root / runtime) for runtime in RUNTIMES}

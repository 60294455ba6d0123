"""Real converted digits artifacts for the server tests, made by tf2aif's own converter.

`make_artifacts(root)` lays out a project like the demo's (models/digits trained by
examples/digits/train.py in ~8 s, app/ with the processing module) and runs
`tf2aif.image.convert.run_conversion` once per runtime the server can run here.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tf2aif.image.convert import ConvertSpec, PluginRef, run_conversion

REPO = Path(__file__).resolve().parents[2]
RUNTIMES = ("tf", "tflite", "openvino", "onnxruntime")
CONVERTER_BACKEND = {"onnxruntime": "onnx"}  # other runtimes: backend named like the runtime
FIDELITY_SAMPLES = 64  # enough for the gate's report; the server tests compare outputs themselves

sys.path.insert(0, str(REPO / "examples" / "digits"))
import train as digits_train  # noqa: E402

__all__ = ["RUNTIMES", "digits_train", "make_artifact", "make_artifacts", "make_project"]


def make_project(root: Path) -> Path:
    """models/digits (freshly trained), app/ and examples/digits/ (app/calibration.py imports it)."""
    digits_train.train(root / "models" / "digits")
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "app", root / "app", ignore=ignore)
    shutil.copytree(REPO / "examples" / "digits", root / "examples" / "digits", ignore=ignore)
    return root


def make_artifact(project: Path, runtime: str, out: Path) -> Path:
    spec = ConvertSpec(
        name="digits",
        runtime=runtime,
        precision="fp32",
        backend=CONVERTER_BACKEND.get(runtime, runtime),
        model="models/digits",
        processing="app/processing.py",
        plugins_dir="app",
        fidelity_samples=PluginRef(
            module="app/calibration.py", function="held_out", count=FIDELITY_SAMPLES
        ),
    )
    run_conversion(spec, root=project, out=out)
    return out


def make_artifacts(root: Path) -> dict[str, Path]:
    project = make_project(root / "project")
    return {runtime: make_artifact(project, runtime, root / runtime) for runtime in RUNTIMES}

"""Small on-disk projects for tests: a manifest, a stand-in SavedModel and plug-in modules.

The stand-in model is a folder with a fixed saved_model.pb: validation only checks that the
files exist, and fixed bytes keep model digests (and so golden bake files) stable.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

PROCESSING = """\
def preprocess(payload, content_type):
    return {"image": payload}


def postprocess(outputs):
    return outputs
"""

CALIBRATION = """\
def samples():
    yield {"image": [[0.0]]}


def held_out():
    yield {"image": [[0.0]]}, 0
"""


def write_project(
    root: Path,
    manifest: str,
    *,
    model: str = "models/m",
    keras: bool = False,
    source: Path | None = None,
) -> Path:
    """Create the project under `root` and return the manifest path. `source`: a real model (a
    SavedModel folder or a .keras file) copied to `model` instead of the stand-in."""
    model_path = root / model
    if source is not None:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, model_path)
    elif keras:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        model_path.write_bytes(b"PK stand-in keras archive")
    else:
        (model_path / "variables").mkdir(parents=True, exist_ok=True)
        (model_path / "saved_model.pb").write_bytes(b"stand-in saved model")
        (model_path / "variables" / "variables.index").write_bytes(b"stand-in index")
    (root / "app").mkdir(exist_ok=True)
    (root / "app" / "processing.py").write_text(PROCESSING)
    (root / "app" / "calibration.py").write_text(CALIBRATION)
    file = root / "tf2aif.yaml"
    file.write_text(textwrap.dedent(manifest))
    return file


BASIC = """\
version: 1
name: demo
model: {path: models/m}
processing: {module: app/processing.py}
calibration: {module: app/calibration.py, function: samples, count: 50}
targets:
  platforms: [cpu, arm]
  runtimes: [tflite, openvino]
  precisions: [fp32, int8]
fidelity: {atol: 0.01, min_top1_agreement: 0.99}
registry: registry.example.com/team
"""

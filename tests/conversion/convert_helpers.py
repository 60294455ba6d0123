"""ConvertSpecs for the demo project, as the plan would build them locally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tf2aif.image.convert.spec import ConvertSpec, PluginRef, Thresholds

CALIBRATION = PluginRef(module="app/calibration.py", function="samples", count=200)
HELD_OUT = PluginRef(module="app/calibration.py", function="held_out")
GATE = Thresholds(min_top1_agreement=0.98, max_accuracy_drop=0.01)


def digits_spec(runtime: str, precision: str, *, backend: str | None = None, **changes: Any):
    fields: dict[str, Any] = {
        "name": "digits",
        "runtime": runtime,
        "precision": precision,
        "backend": backend or runtime,
        "model": "models/digits",
        "processing": "app/processing.py",
        "plugins_dir": "app",
        "calibration": CALIBRATION,
        "fidelity_samples": HELD_OUT,
        "thresholds": GATE,
    }
    return ConvertSpec(**(fields | changes))


REPO_BUILDER = Path(__file__).resolve().parents[2] / "builder"

"""What one conversion stage must do, as data.

The plan builds one ConvertSpec per conversion target; `tf2aif bake` passes it to the converter
stage as the build arg CONVERT_SPEC (JSON), and `tf2aif convert` hands it to the same code
in-process. Paths are relative to `root` (the manifest's folder locally, /src in a build stage).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["ConvertSpec", "OutputThresholds", "PluginRef", "Thresholds"]


@dataclass(frozen=True, kw_only=True)
class PluginRef:
    """A function in a user module: `module` is a .py path, `function` its name."""

    module: str
    function: str
    count: int | None = None  # upper bound on samples taken from it


@dataclass(frozen=True, kw_only=True)
class OutputThresholds:
    """The difference limits of one named output; None: the gate-wide limit applies to it."""

    name: str
    atol: float | None = None
    rtol: float | None = None


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Fidelity gate; None means 'not checked'."""

    atol: float | None = None
    rtol: float | None = None
    min_top1_agreement: float | None = None
    max_accuracy_drop: float | None = None
    # the output top-1 and accuracy are judged on; None: picked by `fidelity.class_output_of`
    class_output: str | None = None
    # per-output difference limits (sorted by name); other outputs keep atol/rtol
    outputs: tuple[OutputThresholds, ...] = ()
    # a quantized variant failing the gate may try the converter's more-float candidates;
    # None: on (the default), False: off
    fallback: bool | None = None

    def limits_for(self, output: str) -> tuple[float | None, float | None]:
        """(atol, rtol) that gate `output`."""
        own = next((o for o in self.outputs if o.name == output), None)
        if own is None:
            return self.atol, self.rtol
        return (
            own.atol if own.atol is not None else self.atol,
            own.rtol if own.rtol is not None else self.rtol,
        )

    @property
    def fallback_allowed(self) -> bool:
        return self.fallback is not False


@dataclass(frozen=True, kw_only=True)
class ConvertSpec:
    name: str  # model name
    runtime: str
    precision: str
    backend: str  # converter function key, from the recipe (tflite, openvino, onnx, tensorrt, ...)
    model: str  # SavedModel dir or .keras file, relative to root
    signature: str = "serving_default"
    processing: str | None = None  # processing module, relative to root
    plugins_dir: str | None = None  # folder copied into the artifact as plugins/ (holds processing)
    calibration: PluginRef | None = None
    fidelity_samples: PluginRef | None = None  # held-out samples; yields inputs or (inputs, label)
    thresholds: Thresholds = field(default_factory=Thresholds)
    options: Mapping[str, Any] = field(default_factory=dict)  # e.g. opset, int8_io

    def to_json(self) -> str:
        data = asdict(replace(self, options=dict(self.options)))
        # unset: specs (and digests) as before these fields existed
        for key in ("class_output", "outputs", "fallback"):
            if data["thresholds"][key] in (None, ()):
                del data["thresholds"][key]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ConvertSpec:
        data = json.loads(text)
        for key in ("calibration", "fidelity_samples"):
            if data.get(key) is not None:
                data[key] = PluginRef(**data[key])
        thresholds = dict(data.get("thresholds", {}))
        thresholds["outputs"] = tuple(OutputThresholds(**o) for o in thresholds.get("outputs", ()))
        data["thresholds"] = Thresholds(**thresholds)
        return cls(**data)

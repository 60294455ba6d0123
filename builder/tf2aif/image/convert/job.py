"""What a converter backend receives and returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tf2aif.image.artifact import TensorSpec
from tf2aif.image.convert.samples import Samples
from tf2aif.image.convert.spec import ConvertSpec

__all__ = ["ConvertJob", "ConvertResult"]


@dataclass(frozen=True, kw_only=True)
class ConvertJob:
    spec: ConvertSpec
    saved_model: Path  # a SavedModel whose `serving_default` is the signature to convert
    keras_model: Path | None  # the user's .keras file when the source was one (vitis-ai needs it)
    model_dir: Path  # the backend writes its files here (the artifact's model/ folder)
    workdir: Path  # scratch space, deleted after the conversion
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    calibration: Callable[[], Samples]  # loads the user's samples on first call, then cached
    # the precision-fallback candidate to build (fallback.ORDER): "full" quantizes everything
    candidate: str = "full"

    @property
    def variant(self) -> str:
        return f"{self.spec.runtime}-{self.spec.precision}"


@dataclass(frozen=True, kw_only=True)
class ConvertResult:
    model_file: str  # relative to the artifact dir, e.g. "model/model.tflite"
    options: Mapping[str, Any] = field(default_factory=dict)  # runtime hints for the server
    tools: tuple[str, ...] = ()  # distributions whose versions are recorded in the artifact
    check_with: str | None = None  # runner that checks fidelity here; None: not runnable here
    check_note: str = ""  # what the fidelity check covers when it is not the full runtime
    float_layers: tuple[str, ...] = ()  # layers a fallback candidate kept in float
    layers: int | None = None  # compute layers in the converted model, when counted

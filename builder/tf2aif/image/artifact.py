"""The artifact contract between conversion and serving.

A converted artifact is a directory:

    tf2aif-artifact.json   ArtifactInfo below (what the server reads to pick its backend)
    model/                 the runtime's files: saved_model/ | model.tflite | model.xml+model.bin |
                           model.onnx (+ calibration.cache for TensorRT int8) | model.xmodel
    plugins/               optional copy of the user's plug-in folder (processing module lives here)
    fidelity.json          the fidelity report of this conversion (also embedded below)

The converter stage writes it to /out; the server image holds it at /opt/tf2aif/model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ARTIFACT_FILE", "ArtifactInfo", "TensorSpec", "read_artifact", "write_artifact"]

ARTIFACT_FILE = "tf2aif-artifact.json"
FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """One model input or output in Open Inference Protocol terms."""

    name: str
    datatype: str  # OIP datatype: FP32, FP16, INT8, UINT8, INT32, INT64, BOOL, BYTES, ...
    shape: tuple[int, ...]  # -1 marks a dynamic dimension (the batch dimension first)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(name=data["name"], datatype=data["datatype"], shape=tuple(data["shape"]))


@dataclass(frozen=True, kw_only=True)
class ArtifactInfo:
    name: str  # model name served at /v2/models/{name}
    runtime: str  # tf | tflite | openvino | onnxruntime | tensorrt | vitis-ai
    precision: str  # fp32 | fp16 | int8
    model_file: str  # relative to the artifact dir, e.g. "model/model.tflite"
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    source_digest: str = ""  # sha256 of the source model files
    processing: str | None = (
        None  # relative path of the processing module, e.g. "plugins/processing.py"
    )
    options: Mapping[str, Any] = field(
        default_factory=dict
    )  # runtime hints (threads, opset, int8 io)
    fidelity: Mapping[str, Any] = field(default_factory=dict)
    tools: Mapping[str, str] = field(default_factory=dict)  # package -> version used to convert
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [asdict(t) | {"shape": list(t.shape)} for t in self.inputs]
        data["outputs"] = [asdict(t) | {"shape": list(t.shape)} for t in self.outputs]
        data["options"] = dict(self.options)
        data["fidelity"] = dict(self.fidelity)
        data["tools"] = dict(self.tools)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArtifactInfo:
        return cls(
            name=data["name"],
            runtime=data["runtime"],
            precision=data["precision"],
            model_file=data["model_file"],
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
            source_digest=data.get("source_digest", ""),
            processing=data.get("processing"),
            options=dict(data.get("options", {})),
            fidelity=dict(data.get("fidelity", {})),
            tools=dict(data.get("tools", {})),
            format_version=int(data.get("format_version", FORMAT_VERSION)),
        )


def write_artifact(directory: str | Path, info: ArtifactInfo) -> Path:
    path = Path(directory) / ARTIFACT_FILE
    path.write_text(json.dumps(info.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def read_artifact(directory: str | Path) -> ArtifactInfo:
    path = Path(directory) / ARTIFACT_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory}: no {ARTIFACT_FILE}; is this a tf2aif artifact directory?"
        )
    return ArtifactInfo.from_dict(json.loads(path.read_text()))

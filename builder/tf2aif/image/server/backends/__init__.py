"""Runtime backends, chosen by the artifact's `runtime` field and imported only when used."""

from __future__ import annotations

import importlib
from pathlib import Path

from tf2aif.errors import did_you_mean
from tf2aif.image.artifact import ArtifactInfo
from tf2aif.image.server.backends.base import Backend, BackendSettings
from tf2aif.image.server.errors import ServerError

__all__ = ["BACKENDS", "Backend", "BackendSettings", "backend_class", "create_backend"]

# runtime -> (module, class); each module imports its runtime package only inside load().
BACKENDS: dict[str, tuple[str, str]] = {
    "tf": ("tf2aif.image.server.backends.tf", "TFBackend"),
    "tflite": ("tf2aif.image.server.backends.tflite", "TFLiteBackend"),
    "openvino": ("tf2aif.image.server.backends.openvino", "OpenVINOBackend"),
    "onnxruntime": ("tf2aif.image.server.backends.onnxruntime", "OnnxRuntimeBackend"),
    "tensorrt": ("tf2aif.image.server.backends.tensorrt", "TensorRTBackend"),
    "vitis-ai": ("tf2aif.image.server.backends.vitis_ai", "VitisAIBackend"),
}


def backend_class(runtime: str) -> type[Backend]:
    if runtime not in BACKENDS:
        raise ServerError(
            f"the artifact's runtime {runtime!r} has no server backend{did_you_mean(runtime, BACKENDS)}"
            f"; known runtimes: {', '.join(BACKENDS)}"
        )
    module, name = BACKENDS[runtime]
    return getattr(importlib.import_module(module), name)


def create_backend(info: ArtifactInfo, directory: Path, settings: BackendSettings) -> Backend:
    return backend_class(info.runtime)(info, directory, settings)

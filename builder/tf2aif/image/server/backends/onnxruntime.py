"""ONNX Runtime: TensorRT or CUDA execution providers when present, else CPU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tf2aif.image.server.backends.base import Arrays, Backend, cpu_count, match_names, require
from tf2aif.image.server.errors import ServerError

__all__ = ["OnnxRuntimeBackend", "choose_providers"]

# device option -> providers in order of preference (CPU always last, as the fallback)
_PREFERENCE = {
    "auto": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    "gpu": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "cpu": ("CPUExecutionProvider",),
}


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    wanted = _PREFERENCE.get(device.lower())
    if wanted is None:
        raise ServerError(
            f"device {device!r} is not an onnxruntime choice: {', '.join(_PREFERENCE)}"
        )
    chosen = [provider for provider in wanted if provider in available]
    if not chosen:
        raise ServerError(
            f"none of {list(wanted)} is available; onnxruntime offers {list(available)}"
        )
    return chosen


class OnnxRuntimeBackend(Backend):
    runtime = "onnxruntime"

    def load(self) -> None:
        ort = require("onnxruntime", self.runtime)
        options = ort.SessionOptions()
        # ORT's default is one thread per core of the machine, not of this process's CPU set
        options.intra_op_num_threads = self.settings.threads or cpu_count()
        # Idle intra-op threads spin for a while after each run. In a server the event loop needs
        # that CPU right then: with spinning, digits at concurrency 32 on one core served 2.8-4.0k
        # req/s, without it 6.1-7.3k.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = choose_providers(self.settings.device, ort.get_available_providers())
        self._ort_version = ort.__version__
        self._session = ort.InferenceSession(str(self.model_path), options, providers=providers)
        native_inputs = [node.name for node in self._session.get_inputs()]
        native_outputs = [node.name for node in self._session.get_outputs()]
        self._inputs = match_names([t.name for t in self.info.inputs], native_inputs, "inputs")
        self._outputs = match_names([t.name for t in self.info.outputs], native_outputs, "outputs")
        self._output_names = list(self._outputs.values())

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray]:
        feed = {native: inputs[name] for name, native in self._inputs.items()}
        results = self._session.run(self._output_names, feed)  # thread-safe
        return dict(zip(self._outputs, results, strict=True))

    def details(self) -> dict[str, Any]:
        return {"onnxruntime": self._ort_version, "providers": self._session.get_providers()}

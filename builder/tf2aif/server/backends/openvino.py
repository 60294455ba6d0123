"""OpenVINO: the IR compiled for a device with a PERFORMANCE_HINT; one infer request per thread."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from tf2aif.server.backends.base import Arrays, Backend, match_names, require

__all__ = ["OpenVINOBackend", "inference_precision", "pick_device"]


def pick_device(device: str, available: list[str]) -> str:
    """`auto`: the first GPU if the machine has one, else CPU; anything else is passed through."""
    if device.lower() != "auto":
        return device.upper()
    return next((name for name in available if name.startswith("GPU")), "CPU")


def inference_precision(precision: str, options: Mapping[str, Any]) -> str | None:
    """The converter's `inference_precision_hint` (what its fidelity gate measured), else f32 for
    fp32: OpenVINO's CPU default is bf16 on CPUs with AVX512-BF16/AMX, which moved the digits
    softmax outputs by 1.3e-3. Without either, the device default."""
    return options.get("inference_precision_hint") or {"fp32": "f32"}.get(precision)


class OpenVINOBackend(Backend):
    runtime = "openvino"

    def load(self) -> None:
        ov = require("openvino", self.runtime)
        core = ov.Core()
        self._device = pick_device(self.settings.device, core.available_devices)
        config: dict[str, Any] = {"PERFORMANCE_HINT": self.settings.performance_hint.upper()}
        if self.settings.threads and self._device == "CPU":
            config["INFERENCE_NUM_THREADS"] = self.settings.threads
        precision = inference_precision(self.info.precision, self.info.options)
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        self._compiled = core.compile_model(core.read_model(self.model_path), self._device, config)
        self._version = ov.get_version()
        self._input_ports = _ports(
            [t.name for t in self.info.inputs], self._compiled.inputs, "inputs"
        )
        self._output_ports = _ports(
            [t.name for t in self.info.outputs], self._compiled.outputs, "outputs"
        )
        self._local = threading.local()

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:  # infer requests are not thread-safe; one per worker thread
            request = self._local.request = self._compiled.create_infer_request()
        results = request.infer({port: inputs[name] for name, port in self._input_ports.items()})
        return {
            name: np.array(results[port], copy=True) for name, port in self._output_ports.items()
        }

    def details(self) -> dict[str, Any]:
        return {
            "openvino": self._version,
            "device": self._device,
            "performance_hint": self.settings.performance_hint.upper(),
            "inference_precision": str(self._compiled.get_property("INFERENCE_PRECISION_HINT")),
        }


def _ports(wanted: list[str], ports: Any, what: str) -> dict[str, Any]:
    """Artifact name -> port: a port carries a set of tensor names, one of which should match."""
    by_name = {name: port for port in ports for name in port.get_names()}
    if all(name in by_name for name in wanted):
        return {name: by_name[name] for name in wanted}
    native = [port.get_any_name() if port.get_names() else f"#{i}" for i, port in enumerate(ports)]
    mapping = match_names(wanted, native, what)  # falls back to position, or explains
    return {name: ports[native.index(mapping[name])] for name in wanted}

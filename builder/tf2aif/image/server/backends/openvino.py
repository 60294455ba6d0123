"""OpenVINO: the IR compiled for a device with a PERFORMANCE_HINT; one infer request per thread."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from tf2aif.image.openvino_ext import as_openvino_inputs, load_extensions, refusal
from tf2aif.image.server.backends.base import Arrays, Backend, bucket_sizes, match_names, require
from tf2aif.image.server.errors import ApiError, ServerError

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
    """A model compiled with a dynamic batch pays ~5 ms whenever the input shape changes (digits,
    CPU), so each batch bucket gets its own static-shape compiled model, built during warm-up;
    other batch sizes use the dynamic one."""

    runtime = "openvino"
    shape_buckets = True

    def load(self) -> None:
        ov = require("openvino", self.runtime)
        try:  # before the Core: an extension registers its ops with every Core made after it
            load_extensions(self.info.options.get("extensions", ()))
        except RuntimeError as exc:
            raise ServerError(str(exc)) from exc
        self._core = ov.Core()
        self._device = pick_device(self.settings.device, self._core.available_devices)
        config: dict[str, Any] = {"PERFORMANCE_HINT": self.settings.performance_hint.upper()}
        if self.settings.threads and self._device == "CPU":
            config["INFERENCE_NUM_THREADS"] = self.settings.threads
        precision = inference_precision(self.info.precision, self.info.options)
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        self._config = config
        self._model = self._core.read_model(self.model_path)
        self._compiled = self._core.compile_model(self._model, self._device, config)
        self._version = ov.get_version()
        ports = list(self._compiled.inputs)
        self._inputs = {
            name: ports.index(port)
            for name, port in _ports([t.name for t in self.info.inputs], ports, "inputs").items()
        }
        ports = list(self._compiled.outputs)
        self._outputs = {
            name: ports.index(port)
            for name, port in _ports([t.name for t in self.info.outputs], ports, "outputs").items()
        }
        self._static: dict[int, Any] = {}  # batch bucket -> static-shape compiled model
        text = any(p.get_element_type().get_type_name() == "string" for p in self._model.inputs)
        if text:  # the tokenizers' ops size their outputs at run time; a static batch breaks them
            self.shape_buckets = False
        self._static_ok = (
            self.batchable
            and not text
            and all(port.get_partial_shape()[1:].is_static for port in self._model.inputs)
        )
        self._buckets = set(bucket_sizes(self.settings.max_batch_size))
        self._compile_lock = threading.Lock()
        self._local = threading.local()

    def _compiled_for(self, rows: int) -> Any:
        if not self._static_ok or rows not in self._buckets:
            return self._compiled
        compiled = self._static.get(rows)
        if compiled is None:
            with self._compile_lock:
                compiled = self._static.get(rows)
                if compiled is None:
                    model = self._model.clone()
                    model.reshape(
                        {port: [rows, *port.get_partial_shape()[1:]] for port in model.inputs}
                    )
                    compiled = self._core.compile_model(model, self._device, self._config)
                    self._static[rows] = compiled
        return compiled

    def check(self, inputs: Arrays) -> None:
        why = refusal(inputs)
        if why:
            raise ApiError(400, why)

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray]:
        inputs = as_openvino_inputs(inputs)
        rows = next(iter(inputs.values())).shape[0]
        compiled = self._compiled_for(rows)
        requests = getattr(self._local, "requests", None)
        if requests is None:  # infer requests are not thread-safe; one set per worker thread
            requests = self._local.requests = {}
        request = requests.get(id(compiled))
        if request is None:
            request = requests[id(compiled)] = compiled.create_infer_request()
        request.infer({index: inputs[name] for name, index in self._inputs.items()})
        return {
            name: np.array(request.get_output_tensor(index).data, copy=True)
            for name, index in self._outputs.items()
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

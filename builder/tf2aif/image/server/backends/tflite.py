"""TensorFlow Lite / LiteRT: `ai_edge_litert` (else `tflite_runtime`) interpreters, one per thread.

A model converted with Select TF ops (artifact option `select_tf_ops`) runs on TensorFlow's own
`tf.lite.Interpreter` instead, the one that applies the Flex delegate (tf2aif.image.flex).

Tensors are resized when a batch's shape differs from the last one. Integer-quantized inputs and
outputs (int8 I/O) are quantized/dequantized with the interpreter's own scale and zero point
whenever the artifact declares the tensor as float.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tf2aif.image.server.backends.base import Arrays, Backend, cpu_count, match_names
from tf2aif.image.server.errors import ServerError

__all__ = ["Quantization", "TFLiteBackend", "dequantize", "quantize"]

_INTERPRETERS = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


@dataclass(frozen=True, kw_only=True)
class Quantization:
    scale: float
    zero_point: int
    dtype: np.dtype


def quantize(values: np.ndarray, q: Quantization) -> np.ndarray:
    info = np.iinfo(q.dtype)
    scaled = np.round(values / q.scale) + q.zero_point
    return np.clip(scaled, info.min, info.max).astype(q.dtype)


def dequantize(values: np.ndarray, q: Quantization) -> np.ndarray:
    return ((values.astype(np.float32) - q.zero_point) * q.scale).astype(np.float32)


def _interpreter_class() -> tuple[Any, str]:
    for module_name in _INTERPRETERS:
        try:
            return importlib.import_module(module_name).Interpreter, module_name.split(".")[0]
        except ImportError:
            continue
    raise ServerError(
        "runtime 'tflite' needs ai-edge-litert (or tflite-runtime), neither can be imported here; "
        "use the tflite image or install it (pip install 'tf2aif[tflite]')"
    )


def _flex_interpreter_class() -> tuple[Any, str]:
    from tf2aif.image.flex import flex_interpreter_class, no_flex_reason

    interpreter_class = flex_interpreter_class()
    if interpreter_class is None:
        raise ServerError(no_flex_reason())
    return interpreter_class, "tensorflow-flex"


@dataclass(frozen=True, kw_only=True)
class _Tensor:
    index: int
    quantization: Quantization | None  # set when the artifact says float but the tensor is int


class _Runner:
    """One interpreter allocated for one set of input shapes (not thread-safe)."""

    def __init__(self, interpreter: Any, feeds: Mapping[int, np.ndarray]) -> None:
        self.interpreter = interpreter
        for index, array in feeds.items():
            interpreter.resize_tensor_input(index, list(array.shape), strict=False)
        interpreter.allocate_tensors()

    def run(self, feeds: Mapping[int, np.ndarray], outputs: Mapping[str, int]) -> dict[str, Any]:
        it = self.interpreter
        for index, array in feeds.items():
            it.set_tensor(index, array)
        it.invoke()
        return {name: it.get_tensor(index) for name, index in outputs.items()}  # copies


class TFLiteBackend(Backend):
    """Resizing an interpreter re-plans its memory and re-prepares XNNPACK (about 30 ms for
    MobileNetV2), so each worker thread keeps one interpreter per batch bucket instead.

    Only shapes worth keeping are kept: at most MAX_INTERPRETERS_PER_THREAD, least recently used
    first out, and none for a batch over the largest bucket or inputs over KEEP_INPUT_BYTES.
    Such a request gets an interpreter of its own, freed with it: an interpreter holds its
    tensors' memory, and keeping one per distinct oversized shape grew the server by gigabytes.
    """

    runtime = "tflite"
    shape_buckets = True
    MAX_INTERPRETERS_PER_THREAD = 16  # bounds memory when non-batch dims vary too
    KEEP_INPUT_BYTES = 8 * 1024 * 1024

    def load(self) -> None:
        if self.info.options.get("select_tf_ops"):
            self._interpreter_cls, self._package = _flex_interpreter_class()
        else:
            self._interpreter_cls, self._package = _interpreter_class()
        self._model = self.model_path.read_bytes()
        self._threads = self.settings.threads or cpu_count()
        probe = self._new_interpreter()
        inputs, outputs = _signature_details(probe, self.info.options.get("signature"))
        self._inputs = self._tensors(self.info.inputs, inputs, "inputs")
        self._outputs = self._tensors(self.info.outputs, outputs, "outputs")
        self._output_indices = {name: tensor.index for name, tensor in self._outputs.items()}
        self._local = threading.local()
        self._batchable = self.batchable
        del probe  # each worker thread makes its own interpreter

    def _new_interpreter(self) -> Any:
        try:
            return self._interpreter_cls(model_content=self._model, num_threads=self._threads)
        except (ValueError, RuntimeError) as exc:
            raise ServerError(f"{self.model_path}: not a loadable TFLite model: {exc}") from exc

    def _tensors(self, specs: Any, details: dict[str, dict], what: str) -> dict[str, _Tensor]:
        mapping = match_names([s.name for s in specs], list(details), what)
        tensors = {}
        for spec in specs:
            detail = details[mapping[spec.name]]
            tensors[spec.name] = _Tensor(
                index=detail["index"], quantization=_quantization(spec, detail)
            )
        return tensors

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray]:
        feeds = {}
        for name, tensor in self._inputs.items():
            array = inputs[name]
            if tensor.quantization is not None:
                array = quantize(array, tensor.quantization)
            feeds[tensor.index] = array
        results = self._runner(feeds).run(feeds, self._output_indices)
        for name, tensor in self._outputs.items():
            if tensor.quantization is not None:
                results[name] = dequantize(results[name], tensor.quantization)
        return results

    def _runner(self, feeds: Mapping[int, np.ndarray]) -> _Runner:
        if not self._keeps(feeds):
            return _Runner(self._new_interpreter(), feeds)
        runners = getattr(self._local, "runners", None)
        if runners is None:  # interpreters are not thread-safe: each worker has its own
            runners = self._local.runners = {}
        shapes = tuple((index, array.shape) for index, array in feeds.items())
        runner = runners.pop(shapes, None)  # re-inserted below: the dict is in LRU order
        if runner is None:
            while len(runners) >= self.MAX_INTERPRETERS_PER_THREAD:
                runners.pop(next(iter(runners)))
            runner = _Runner(self._new_interpreter(), feeds)
        runners[shapes] = runner
        return runner

    def _keeps(self, feeds: Mapping[int, np.ndarray]) -> bool:
        """Whether an interpreter for these shapes is worth keeping for the next batch."""
        arrays = list(feeds.values())
        rows_fit = not self._batchable or arrays[0].shape[0] <= self.settings.max_batch_size
        return rows_fit and sum(a.nbytes for a in arrays) <= self.KEEP_INPUT_BYTES

    def kept_shapes(self) -> list[tuple[int, ...]]:
        """Input shapes this thread keeps an interpreter for, least recently used first."""
        return [shapes[0][1] for shapes in getattr(self._local, "runners", {})]

    def details(self) -> dict[str, Any]:
        quantized = sorted(n for n, t in (self._inputs | self._outputs).items() if t.quantization)
        return {"interpreter": self._package, "threads": self._threads, "quantized_io": quantized}


def _signature_details(interpreter: Any, key: str | None) -> tuple[dict, dict]:
    """Input and output details by signature name; by tensor name if the model has no signature."""
    signatures = interpreter.get_signature_list()
    if signatures:
        key = key if key in signatures else next(iter(signatures))
        runner = interpreter.get_signature_runner(key)
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        del runner  # a live runner holds the interpreter and blocks allocate_tensors
        return inputs, outputs
    return (
        {d["name"]: d for d in interpreter.get_input_details()},
        {d["name"]: d for d in interpreter.get_output_details()},
    )


def _quantization(spec: Any, detail: Mapping[str, Any]) -> Quantization | None:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if spec.datatype not in ("FP32", "FP16") or dtype.kind not in "iu":
        return None
    if not scale:
        raise ServerError(
            f"tensor {spec.name!r} is {dtype.name} without quantization parameters but the "
            f"artifact declares it {spec.datatype}"
        )
    return Quantization(scale=float(scale), zero_point=int(zero_point), dtype=dtype)

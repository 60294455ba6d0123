"""TensorRT (NVIDIA GPU, Jetson): an engine built from the artifact's ONNX on first start.

An engine only runs on the GPU generation and TensorRT version that built it, so engines are
cached in a folder (mount a volume) under a key of model digest + compute capability + TensorRT
version + precision + max batch, with a JSON file next to each engine recording those facts.
Int8 engines take their scales from the artifact's calibration cache (model/calibration.cache).

The calls that need a GPU live in `_gpu_compute_capability`, `_build_engine` and `_EngineRunner`;
the cache logic around them is plain Python.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tf2aif.image.server.backends.base import Arrays, Backend, match_names, require
from tf2aif.image.server.errors import ServerError

__all__ = ["EngineKey", "TensorRTBackend", "default_cache_dir", "engine_paths", "load_or_build"]

log = logging.getLogger(__name__)

CALIBRATION_CACHE = "calibration.cache"


@dataclass(frozen=True, kw_only=True)
class EngineKey:
    model_digest: str  # sha256 of the ONNX file (and the calibration cache, for int8)
    compute_capability: str  # e.g. "8.6"
    tensorrt_version: str
    precision: str
    max_batch_size: int

    def stem(self) -> str:
        capability = self.compute_capability.replace(".", "")
        return (
            f"{self.model_digest[:16]}-sm{capability}-trt{self.tensorrt_version}"
            f"-{self.precision}-b{self.max_batch_size}"
        )


def model_digest(*files: Path) -> str:
    digest = hashlib.sha256()
    for path in files:
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def default_cache_dir(env: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "/tmp")) / ".cache")
    return Path(base) / "tf2aif" / "tensorrt"


def engine_paths(cache_dir: Path, key: EngineKey) -> tuple[Path, Path]:
    """The engine file and the JSON describing it."""
    stem = key.stem()  # holds dots (10.3.0): append suffixes, never with_suffix
    return cache_dir / f"{stem}.engine", cache_dir / f"{stem}.json"


def load_or_build(cache_dir: Path, key: EngineKey, build: Callable[[], bytes]) -> bytes:
    """The cached engine for `key`, or a new one from `build()` written atomically to the cache."""
    engine_file, info_file = engine_paths(cache_dir, key)
    if engine_file.is_file() and info_file.is_file():
        recorded = json.loads(info_file.read_text())
        if {k: recorded.get(k) for k in asdict(key)} == asdict(key):
            log.info("using cached TensorRT engine %s", engine_file)
            return engine_file.read_bytes()
    log.warning(
        "building a TensorRT engine for %s (first start on this GPU; takes minutes)", key.stem()
    )
    started = time.monotonic()
    engine = build()
    cache_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(engine_file, engine)
    info = asdict(key) | {
        "build_seconds": round(time.monotonic() - started, 1),
        "bytes": len(engine),
    }
    _write_atomic(info_file, (json.dumps(info, indent=2, sort_keys=True) + "\n").encode())
    return engine


def _write_atomic(path: Path, data: bytes) -> None:
    """Write then rename, so a second server sharing the volume never reads half an engine."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    os.replace(temporary, path)


class TensorRTBackend(Backend):
    runtime = "tensorrt"

    def load(self) -> None:
        trt = require("tensorrt", self.runtime)
        cudart = _cudart()
        calibration = self.model_path.parent / CALIBRATION_CACHE
        key = EngineKey(
            model_digest=model_digest(self.model_path, calibration),
            compute_capability=_gpu_compute_capability(cudart),
            tensorrt_version=trt.__version__,
            precision=self.info.precision,
            max_batch_size=self.settings.max_batch_size,
        )
        self._cache_dir = self.settings.engine_cache or default_cache_dir()
        self._key = key
        engine = load_or_build(
            self._cache_dir,
            key,
            lambda: _build_engine(
                trt, self.model_path, calibration, self.info.precision, key.max_batch_size
            ),
        )
        self._runner = _EngineRunner(trt, cudart, engine)
        self._inputs = match_names(
            [s.name for s in self.info.inputs], self._runner.inputs, "inputs"
        )
        self._outputs = match_names(
            [s.name for s in self.info.outputs], self._runner.outputs, "outputs"
        )
        self._lock = threading.Lock()  # one execution context

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray]:
        feeds = {native: inputs[name] for name, native in self._inputs.items()}
        with self._lock:
            results = self._runner.run(feeds)
        return {name: results[native] for name, native in self._outputs.items()}

    def details(self) -> dict[str, Any]:
        engine_file, _ = engine_paths(self._cache_dir, self._key)
        return {"engine": str(engine_file)} | asdict(self._key)


# ---- the parts that need an NVIDIA GPU -------------------------------------------------------


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        cudart = require("cuda.cudart", "tensorrt")
    return cudart


def _check(result: Any) -> Any:
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise ServerError(f"CUDA call failed: {error}")
    return values[0] if len(values) == 1 else values


def _gpu_compute_capability(cudart: Any) -> str:
    props = _check(cudart.cudaGetDeviceProperties(0))
    return f"{props.major}.{props.minor}"


def _build_engine(trt: Any, onnx: Path, calibration: Path, precision: str, max_batch: int) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ServerError(f"{onnx}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        low = [1 if d == -1 else d for d in tensor.shape]
        high = [max_batch if j == 0 and d == -1 else max(d, 1) for j, d in enumerate(tensor.shape)]
        profile.set_shape(tensor.name, low, high, high)
    config.add_optimization_profile(profile)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if not calibration.is_file():
            raise ServerError(f"int8 needs {calibration} from the conversion stage; it is missing")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _cache_calibrator(trt, calibration.read_bytes())
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ServerError(f"{onnx}: TensorRT could not build an engine (see the log above)")
    return bytes(serialized)


def _cache_calibrator(trt: Any, cache: bytes) -> Any:
    """A calibrator that only replays the scales computed at conversion time."""

    class CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: Any) -> None:
            return None

        def read_calibration_cache(self) -> bytes:
            return cache

        def write_calibration_cache(self, data: Any) -> None:
            return None

    return CacheCalibrator()


class _EngineRunner:
    """Device buffers and one execution context over a deserialized engine."""

    def __init__(self, trt: Any, cudart: Any, engine: bytes) -> None:
        self._trt, self._cudart = trt, cudart
        self._engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine)
        if self._engine is None:
            raise ServerError(
                "the cached TensorRT engine cannot be deserialized; delete it to rebuild"
            )
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = [n for n in names if is_input[n]]
        self.outputs = [n for n in names if not is_input[n]]
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self._stream = _check(cudart.cudaStreamCreate())

    def _device(self, name: str, nbytes: int) -> int:
        pointer, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                _check(self._cudart.cudaFree(pointer))
            pointer, size = _check(self._cudart.cudaMalloc(nbytes)), nbytes
            self._buffers[name] = (pointer, size)
        return pointer

    def run(self, feeds: Arrays) -> dict[str, np.ndarray]:
        kind = self._cudart.cudaMemcpyKind
        for name in self.inputs:
            array = np.ascontiguousarray(feeds[name], dtype=self._dtypes[name])
            self._context.set_input_shape(name, array.shape)
            pointer = self._device(name, array.nbytes)
            _check(
                self._cudart.cudaMemcpyAsync(
                    pointer,
                    array.ctypes.data,
                    array.nbytes,
                    kind.cudaMemcpyHostToDevice,
                    self._stream,
                )
            )
            self._context.set_tensor_address(name, pointer)
        results = {}
        for name in self.outputs:
            results[name] = np.empty(
                tuple(self._context.get_tensor_shape(name)), self._dtypes[name]
            )
            self._context.set_tensor_address(name, self._device(name, results[name].nbytes))
        if not self._context.execute_async_v3(self._stream):
            raise RuntimeError("TensorRT execution failed")
        for name, array in results.items():
            pointer, _ = self._buffers[name]
            _check(
                self._cudart.cudaMemcpyAsync(
                    array.ctypes.data,
                    pointer,
                    array.nbytes,
                    kind.cudaMemcpyDeviceToHost,
                    self._stream,
                )
            )
        _check(self._cudart.cudaStreamSynchronize(self._stream))
        return results

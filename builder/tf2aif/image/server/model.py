"""One served model: its artifact, backend, batcher and processing hooks, and its readiness.

Loading runs in a background thread so the server answers /v2/health/live (and says "not ready")
while a runtime imports, compiles or builds an engine; ready means loaded *and* warmed up.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from tf2aif.image.artifact import ArtifactInfo, read_artifact
from tf2aif.image.plugins import load_module
from tf2aif.image.server.backends import Backend, BackendSettings, create_backend
from tf2aif.image.server.backends.base import bucket_sizes, zeros_for
from tf2aif.image.server.batching import Batcher
from tf2aif.image.server.errors import ServerError
from tf2aif.image.server.images import limit_image_decoding
from tf2aif.image.server.metrics import ServerMetrics
from tf2aif.image.server.options import ServerOptions
from tf2aif.image.server.protocol import check_inputs
from tf2aif.image.server.tuning import BatchProfile, profile_batch_sizes

__all__ = ["ModelServer", "State", "read_served_artifact"]

log = logging.getLogger(__name__)

VERSION = "1"  # one artifact per server: its only version
# A gRPC request whose runtime call takes at most this long (measured at start-up for its
# number of rows) runs on the event loop when nothing else is queued or running: handing it to
# a worker thread and back costs about as much CPU (60-120 us measured on digits), and the loop
# is blocked no longer than this.
INLINE_MAX_SECONDS = 250e-6


class State(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


def read_served_artifact(directory: Path) -> ArtifactInfo:
    try:
        return read_artifact(directory)
    except FileNotFoundError as exc:
        raise ServerError(str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ServerError(f"{directory}: tf2aif-artifact.json is malformed: {exc!r}") from None


class ModelServer:
    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.directory = options.artifact_dir
        self.info = read_served_artifact(self.directory)
        self.name = self.info.name
        self.version = VERSION
        self.metrics = ServerMetrics(self.info.name, self.info.runtime)
        self.state = State.LOADING
        self.error: str | None = None
        self.backend: Backend | None = None
        self.batcher: Batcher | None = None
        self.processing: ModuleType | None = None
        self.load_seconds: float | None = None
        self.batch_profile: BatchProfile | None = None
        self.inline_rows = 0  # most rows a request may have to run inline; see INLINE_MAX_SECONDS
        self._thread: threading.Thread | None = None
        self._on_failure: Callable[[str], None] | None = None

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    def check_inputs(self, inputs: Any, *, datatypes: Any = None) -> None:
        """A request's inputs against the model's (protocol.check_inputs) and the runtime's own
        limits; raises ApiError (400)."""
        check_inputs(
            inputs,
            self.info.inputs,
            datatypes=datatypes,
            allow_nonfinite=self.options.allow_nonfinite,
        )
        if self.backend is not None:
            self.backend.check(inputs)

    def start(self, on_failure: Callable[[str], None] | None = None) -> None:
        """Load and warm up in the background; `on_failure(message)` is called if that fails."""
        self._on_failure = on_failure
        self._thread = threading.Thread(target=self._load, name="tf2aif-load", daemon=True)
        self._thread.start()

    def wait_loaded(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _load(self) -> None:
        started = time.monotonic()
        try:
            self.processing = self._load_processing()
            backend = create_backend(self.info, self.directory, self._settings())
            backend.load()
            self.backend = backend
            self.batcher = self._make_batcher(backend)
            self.batcher.start(
                warm_up=backend.warm_up if self.options.warmup else None,
                tune=self._tune_batching if self._adaptive(backend) else None,
            )
        except Exception as exc:
            self.error = (
                str(exc) if isinstance(exc, ServerError) else f"{type(exc).__name__}: {exc}"
            )
            self.state = State.FAILED
            log.error(
                "cannot serve %s: %s",
                self.directory,
                self.error,
                exc_info=not isinstance(exc, ServerError),
            )
            if self._on_failure is not None:
                self._on_failure(self.error)
            return
        self.load_seconds = time.monotonic() - started
        self.inline_rows = _inline_rows(self.batch_profile)
        self.state = State.READY
        self.metrics.ready.set(1)
        log.info("model %r (%s) ready in %.1f s", self.name, self.info.runtime, self.load_seconds)

    def _settings(self) -> BackendSettings:
        return BackendSettings(
            threads=self.options.threads,
            device=self.options.device,
            performance_hint=self.options.performance_hint,
            max_batch_size=self.options.max_batch_size,
            engine_cache=self.options.engine_cache,
        )

    def _make_batcher(self, backend: Backend) -> Batcher:
        return Batcher(
            backend.run,
            metrics=self.metrics,
            max_batch_size=self.options.max_batch_size if backend.batchable else 1,
            max_queue_delay_s=self.options.max_queue_delay_ms / 1000.0,
            max_queue_size=self.options.max_queue_size,
            workers=self.options.workers,
        )

    def _adaptive(self, backend: Backend) -> bool:
        """Tuning runs the model, so it needs warm-up on; it has nothing to choose without
        batching."""
        wanted = self.options.adaptive_batching and self.options.max_batch_size > 1
        return wanted and backend.batchable and self.options.warmup

    def _tune_batching(self, limit: int) -> int:
        """Runs on a worker thread (it owns that thread's runtime objects), after warm-up."""
        backend = self.backend
        assert backend is not None

        def call_for(size: int) -> Callable[[], object]:
            inputs = zeros_for(self.info.inputs, size)
            return lambda: backend.run(inputs)

        self.batch_profile = profile_batch_sizes(call_for, bucket_sizes(limit))
        log.info("adaptive batching: %s", self.batch_profile.describe())
        return self.batch_profile.cap

    def _load_processing(self) -> ModuleType | None:
        if not self.info.processing:
            return None
        limit_image_decoding(self.options.max_image_pixels)
        module = load_module(self.directory / self.info.processing)
        missing = [
            f for f in ("preprocess", "postprocess") if not callable(getattr(module, f, None))
        ]
        if missing:
            raise ServerError(f"{self.info.processing}: defines no {' or '.join(missing)}()")
        return module

    def stop(self, timeout: float | None = None) -> None:
        """Finish every accepted request, then release the runtime."""
        self.wait_loaded(timeout)
        if self.batcher is not None:
            self.batcher.stop(timeout)
        if self.backend is not None:
            self.backend.close()
        self.state = State.STOPPED
        self.metrics.ready.set(0)

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.info.runtime,
            "inputs": [_tensor(t) for t in self.info.inputs],
            "outputs": [_tensor(t) for t in self.info.outputs],
            "parameters": {
                "precision": self.info.precision,
                "max_batch_size": self.batch_limit,
                "batching": self._batching(),
                "processing": bool(self.info.processing),
                "runtime": self.backend.details() if self.ready and self.backend else {},
                "fidelity": dict(self.info.fidelity),
                "source_digest": self.info.source_digest,
            },
        }

    def config(self) -> dict[str, Any]:
        """A Triton-style model configuration (what tritonclient's get_model_config reads)."""
        dynamic_batching: dict[str, Any] = {
            "max_queue_delay_microseconds": int(self.options.max_queue_delay_ms * 1000),
            "default_queue_policy": {"max_queue_size": self.options.max_queue_size},
        }
        if self.batcher is not None:
            dynamic_batching["preferred_batch_size"] = [self.batcher.max_batch_size]
        return {
            "name": self.name,
            "platform": self.info.runtime,
            "max_batch_size": self.batch_limit,
            "input": [_config_tensor(t) for t in self.info.inputs],
            "output": [_config_tensor(t) for t in self.info.outputs],
            "dynamic_batching": dynamic_batching,
        }

    @property
    def batch_limit(self) -> int:
        """Most rows one request may carry and still join a batch (larger ones run alone)."""
        if self.backend is not None and not self.backend.batchable:
            return 1
        return self.options.max_batch_size

    def _batching(self) -> dict[str, Any]:
        """How batches are formed: the cap in force, and the start-up measurement behind it."""
        batching: dict[str, Any] = {
            "adaptive": self.batch_profile is not None,
            "batch_cap": self.batcher.max_batch_size if self.batcher else None,
            "inline_rows": self.inline_rows,
        }
        if self.batch_profile is not None:
            batching["per_row_us"] = self.batch_profile.per_row_us()
        return batching


def _tensor(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def _config_tensor(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "data_type": f"TYPE_{spec.datatype}", "dims": list(spec.shape)}


def _inline_rows(profile: BatchProfile | None) -> int:
    """The largest measured batch size whose call took at most INLINE_MAX_SECONDS, else 0
    (also without a measurement: adaptive batching off, or a model that does not batch)."""
    if profile is None:
        return 0
    cheap = [size for size, seconds in profile.seconds.items() if seconds <= INLINE_MAX_SECONDS]
    return max(cheap, default=0)

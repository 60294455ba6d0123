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

from tf2aif.artifact import ArtifactInfo, read_artifact
from tf2aif.plugins import load_module
from tf2aif.server.backends import Backend, BackendSettings, create_backend
from tf2aif.server.batching import Batcher
from tf2aif.server.errors import ServerError
from tf2aif.server.metrics import ServerMetrics
from tf2aif.server.options import ServerOptions

__all__ = ["ModelServer", "State", "read_served_artifact"]

log = logging.getLogger(__name__)

VERSION = "1"  # one artifact per server: its only version


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
        self._thread: threading.Thread | None = None
        self._on_failure: Callable[[str], None] | None = None

    @property
    def ready(self) -> bool:
        return self.state is State.READY

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
            self.batcher.start(warm_up=backend.warm_up if self.options.warmup else None)
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

    def _load_processing(self) -> ModuleType | None:
        if not self.info.processing:
            return None
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
                "max_batch_size": self.batcher.max_batch_size if self.batcher else None,
                "processing": bool(self.info.processing),
                "runtime": self.backend.details() if self.ready and self.backend else {},
                "fidelity": dict(self.info.fidelity),
                "source_digest": self.info.source_digest,
            },
        }

    def config(self) -> dict[str, Any]:
        """A Triton-style model configuration (what tritonclient's get_model_config reads)."""
        batching = self.batcher.max_batch_size if self.batcher else self.options.max_batch_size
        return {
            "name": self.name,
            "platform": self.info.runtime,
            "max_batch_size": batching,
            "input": [_config_tensor(t) for t in self.info.inputs],
            "output": [_config_tensor(t) for t in self.info.outputs],
            "dynamic_batching": {
                "max_queue_delay_microseconds": int(self.options.max_queue_delay_ms * 1000),
                "default_queue_policy": {"max_queue_size": self.options.max_queue_size},
            },
        }


def _tensor(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def _config_tensor(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "data_type": f"TYPE_{spec.datatype}", "dims": list(spec.shape)}

"""Prometheus metrics of one server (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "STAGES", "ServerMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
STAGES = ("preprocess", "queue", "inference", "postprocess")

# 50 us .. 20 s: digits on TFLite runs in tens of microseconds, big models in seconds.
LATENCY_BUCKETS = (
    5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 20,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    def __init__(self, model: str, runtime: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"model": model, "runtime": runtime}
        self.requests = Counter(
            "tf2aif_requests",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "tf2aif_request_duration_seconds",
            "Whole request time by endpoint, from first byte read to response sent",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "tf2aif_stage_duration_seconds",
            "Time per stage: preprocess and postprocess per /predict request, queue per "
            "request (wait before its batch starts), inference per batch (one runtime call)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "tf2aif_batch_size",
            "Rows (dim 0) per runtime call formed by the dynamic batcher",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.inflight = Gauge(
            "tf2aif_inflight_requests",
            "Inference requests (infer and predict) being handled now",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "tf2aif_queue_depth",
            "Requests waiting for the batcher (not yet in a running batch)",
            registry=self.registry,
        )
        self.ready = Gauge(
            "tf2aif_model_ready",
            "1 once the model is loaded and warmed up",
            list(labels),
            registry=self.registry,
        ).labels(**labels)
        # pre-create the stage children so every stage shows up before its first observation
        self.stages = {stage: self.stage_seconds.labels(stage=stage) for stage in STAGES}
        # children by label values: labels() builds a key and takes a lock on every call
        self._answered: dict[tuple[str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    def answered(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request and record its duration."""
        counter = self._answered.get((endpoint, status))
        if counter is None:
            counter = self._answered[endpoint, status] = self.requests.labels(endpoint, str(status))
        counter.inc()
        timer = self._timers.get(endpoint)
        if timer is None:
            timer = self._timers[endpoint] = self.request_seconds.labels(endpoint)
        timer.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

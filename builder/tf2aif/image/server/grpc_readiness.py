"""gRPC health checking (`grpc.health.v1.Health`, from grpcio-health-checking) on the gRPC port:
what Kubernetes' native `grpc:` probes and grpc-health-probe ask.

The server as a whole (service "") and `inference.GRPCInferenceService` are NOT_SERVING while the
model loads, SERVING once it is loaded and warmed up (when /v2/health/ready says ready), and
NOT_SERVING for good from the moment the server starts draining, or when loading failed. Any other
service name is NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tf2aif.image.server.grpc_messages import SERVICE
from tf2aif.image.server.model import ModelServer

__all__ = ["SERVICES", "Readiness"]

SERVICES = ("", SERVICE)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Readiness:
    """The health service of one gRPC server, following one model's state."""

    def __init__(self) -> None:
        self.servicer = health.aio.HealthServicer()  # answers SERVING for "" until told otherwise
        self._tasks: set[asyncio.Task] = set()

    async def register(self, server: grpc.aio.Server) -> None:
        """Add the service to `server` (before it starts), NOT_SERVING until `follow` says ready."""
        for service in SERVICES:
            await self.servicer.set(service, NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)

    def follow(self, model: ModelServer, then: Callable[[], None] = lambda: None) -> None:
        """Turn SERVING when the model's loading ends ready (NOT_SERVING if it failed), after
        running `then()` on the event loop. A thread waits for the loading thread, so nothing
        polls and the event loop never blocks on it."""
        loop = asyncio.get_running_loop()

        def loaded() -> None:
            then()
            task = loop.create_task(self._set(SERVING if model.ready else NOT_SERVING))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        def wait() -> None:
            model.wait_loaded()
            with contextlib.suppress(RuntimeError):  # the loop closed first: nobody to tell
                loop.call_soon_threadsafe(loaded)

        threading.Thread(target=wait, name="tf2aif-grpc-health", daemon=True).start()

    async def drain(self) -> None:
        """NOT_SERVING from now on, whatever the model does next."""
        await self.servicer.enter_graceful_shutdown()

    async def _set(self, status: int) -> None:
        for service in SERVICES:
            await self.servicer.set(service, status)  # ignored once draining

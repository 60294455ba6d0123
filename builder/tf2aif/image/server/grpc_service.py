"""Open Inference Protocol (KServe v2) over gRPC: `inference.GRPCInferenceService`.

It runs in the HTTP server's event loop (grpc.aio) and shares its model, batcher, limits and
metrics: a request is decoded into the same arrays, checked by the same `check_inputs`, queued
on the same batcher, and its failures carry the same messages. HTTP statuses map onto gRPC codes
(400 -> INVALID_ARGUMENT, 404 -> NOT_FOUND, 503 -> UNAVAILABLE); only a server fault is INTERNAL.

Tensor decoding and encoding live in grpc_codec.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import grpc
import numpy as np
from grpc import aio

from tf2aif import __version__
from tf2aif.image.artifact import TensorSpec
from tf2aif.image.server.app import _infer_batch, _require_ready  # the HTTP path's own rules
from tf2aif.image.server.backends.base import zeros_for
from tf2aif.image.server.batching import InferenceFailed
from tf2aif.image.server.errors import ApiError, ServerError
from tf2aif.image.server.grpc_codec import (
    decode_infer_request,
    encode_infer_response,
    requested_outputs,
)
from tf2aif.image.server.grpc_messages import generic_handler, message
from tf2aif.image.server.grpc_readiness import Readiness
from tf2aif.image.server.model import ModelServer
from tf2aif.image.server.options import ServerOptions
from tf2aif.image.server.protocol import check_outputs

__all__ = ["GrpcEndpoint", "InferenceServicer", "start_server", "warm_inline"]

log = logging.getLogger(__name__)

STATUS_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
# Off the event loop past these sizes (the thread pool's hop costs more below them).
DECODE_IN_THREAD_BYTES = 4 * 1024 * 1024
DECODE_IN_THREAD_VALUES = 16 * 1024

T = TypeVar("T")

ServerLiveResponse = message("ServerLiveResponse")
ServerReadyResponse = message("ServerReadyResponse")
ModelReadyResponse = message("ModelReadyResponse")
ServerMetadataResponse = message("ServerMetadataResponse")
ModelMetadataResponse = message("ModelMetadataResponse")
TensorMetadata = message("ModelMetadataResponse.TensorMetadata")
ModelInferResponse = message("ModelInferResponse")


# ---- the service ------------------------------------------------------------------------------


class InferenceServicer:
    """One coroutine per method of inference.GRPCInferenceService."""

    def __init__(self, model: ModelServer) -> None:
        self.model = model

    async def ServerLive(self, request: Any, context: aio.ServicerContext) -> Any:  # noqa: N802
        return ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: aio.ServicerContext) -> Any:  # noqa: N802
        return ServerReadyResponse(ready=self.model.ready)

    async def ModelReady(self, request: Any, context: aio.ServicerContext) -> Any:  # noqa: N802
        return await self._answer(
            "grpc_model_ready",
            context,
            lambda: ModelReadyResponse(ready=self._model(request.name, request.version).ready),
        )

    async def ServerMetadata(self, request: Any, context: aio.ServicerContext) -> Any:  # noqa: N802
        return ServerMetadataResponse(
            name="tf2aif", version=__version__, extensions=["binary_tensor_data"]
        )

    async def ModelMetadata(self, request: Any, context: aio.ServicerContext) -> Any:  # noqa: N802
        def metadata() -> Any:
            model = self._model(request.name, request.version)
            return ModelMetadataResponse(
                name=model.name,
                versions=[model.version],
                platform=model.info.runtime,
                inputs=[_tensor_metadata(t) for t in model.info.inputs],
                outputs=[_tensor_metadata(t) for t in model.info.outputs],
            )

        return await self._answer("grpc_model_metadata", context, metadata)

    async def ModelInfer(self, request: Any, context: aio.ServicerContext) -> Any:  # noqa: N802
        metrics = self.model.metrics
        metrics.inflight.inc()
        try:
            return await self._answer("grpc_infer", context, self._infer(request))
        finally:
            metrics.inflight.dec()

    async def _infer(self, request: Any) -> Any:
        model = self._model(request.model_name, request.model_version)
        _require_ready(model)
        inputs, raw = await _off_loop_if(_is_large(request), self._decode_and_check, model, request)
        outputs = await _run(model, inputs)
        values = sum(array.size for array in outputs.values())
        return await _off_loop_if(
            not raw and values > DECODE_IN_THREAD_VALUES,
            lambda: encode_infer_response(
                ModelInferResponse,
                model_name=model.name,
                model_version=model.version,
                request_id=request.id,
                wanted=requested_outputs(request),
                outputs=outputs,
                specs=model.info.outputs,
                raw=raw,
            ),
        )

    @staticmethod
    def _decode_and_check(model: ModelServer, request: Any) -> tuple[dict[str, np.ndarray], bool]:
        inputs, datatypes, raw = decode_infer_request(
            request, max_bytes=model.options.max_body_bytes
        )
        model.check_inputs(inputs, datatypes=datatypes)
        check_outputs(requested_outputs(request), model.info.outputs)
        return inputs, raw

    def _model(self, name: str, version: str) -> ModelServer:
        model = self.model
        if name != model.name:
            raise ApiError(404, f"unknown model {name!r}; this server serves {model.name!r}")
        if version and version != model.version:
            raise ApiError(
                404, f"model {model.name!r} has no version {version!r}; it has {model.version!r}"
            )
        return model

    async def _answer(
        self, endpoint: str, context: aio.ServicerContext, work: Callable[[], T] | Any
    ) -> T:
        """Run `work` (a function or an awaitable), count it, and turn failures into statuses."""
        started, status, message = time.perf_counter(), 200, ""
        try:
            result = await work if asyncio.iscoroutine(work) else work()
        except ApiError as exc:
            status, message = exc.status, exc.message
        except Exception as exc:
            log.exception("unexpected error on %s", endpoint)
            status, message = 500, f"internal error: {type(exc).__name__}: {exc}"
        self.model.metrics.answered(endpoint, status, time.perf_counter() - started)
        if status != 200:
            await context.abort(STATUS_CODES.get(status, grpc.StatusCode.INTERNAL), message)
        return result


def warm_inline(model: ModelServer) -> None:
    """Make the backend's per-thread runtime objects (TFLite interpreters, OpenVINO infer
    requests) for the event loop's thread now, before health says SERVING, rather than on the
    first request that runs inline; if that fails, requests go through the batcher."""
    if not (model.ready and model.inline_rows and model.backend is not None):
        return
    try:
        model.backend.run(zeros_for(model.info.inputs, 1))
    except Exception:
        log.exception("running on the event loop failed; every request goes to the batcher")
        model.inline_rows = 0


async def _run(model: ModelServer, inputs: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """On this thread when the call is cheap and the batcher idle, else through the batcher."""
    first = next(iter(inputs.values()))
    if model.inline_rows and first.ndim and first.shape[0] <= model.inline_rows:
        assert model.batcher is not None
        try:
            outputs = model.batcher.try_inline(inputs)
        except InferenceFailed as exc:
            raise ApiError(500, str(exc)) from None
        if outputs is not None:
            return outputs
    return await _infer_batch(model, inputs)


def _tensor_metadata(spec: TensorSpec) -> Any:
    return TensorMetadata(name=spec.name, datatype=spec.datatype, shape=list(spec.shape))


def _is_large(request: Any) -> bool:
    raw = request.raw_input_contents
    if raw:  # raw bytes are only viewed: their size is what the NaN scan costs
        return sum(len(chunk) for chunk in raw) > DECODE_IN_THREAD_BYTES
    return request.ByteSize() > DECODE_IN_THREAD_BYTES // 4


async def _off_loop_if(slow: bool, function: Callable[..., T], *args: Any) -> T:
    if slow:
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)
    return function(*args)


# ---- the server -------------------------------------------------------------------------------


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcEndpoint:
    """The running gRPC server and its health service."""

    def __init__(self, server: aio.Server, readiness: Readiness) -> None:
        self.server = server
        self.readiness = readiness
        self._loop = asyncio.get_running_loop()
        self._draining: asyncio.Task | None = None

    def begin_draining(self) -> None:
        """Health turns NOT_SERVING now, while in-flight requests still finish. Safe to call
        from a signal handler: the work is handed to the event loop."""
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._draining = self._loop.create_task(self.readiness.drain())

    async def stop(self, grace: float) -> None:
        await self.readiness.drain()
        await self.server.stop(grace)


async def start_server(model: ModelServer, options: ServerOptions) -> GrpcEndpoint:
    """Listen on options.grpc_port in the running event loop; raise ServerError if it is taken.
    Health says NOT_SERVING until `endpoint.readiness.follow(model)` sees the model ready."""
    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", options.max_body_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),  # a taken port is an error, not a shared one
        ]
    )
    servicer = InferenceServicer(model)
    server.add_generic_rpc_handlers(
        (
            generic_handler(
                {
                    name: getattr(servicer, name)
                    for name in (
                        "ServerLive",
                        "ServerReady",
                        "ModelReady",
                        "ServerMetadata",
                        "ModelMetadata",
                        "ModelInfer",
                    )
                }
            ),
        )
    )
    readiness = Readiness()
    await readiness.register(server)
    address = _address(options.host, options.grpc_port)
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ServerError(f"gRPC cannot listen on {address}: {exc}") from None
    await server.start()
    log.info("gRPC (Open Inference Protocol) on %s", address)
    return GrpcEndpoint(server, readiness)

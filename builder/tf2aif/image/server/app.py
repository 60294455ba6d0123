"""The Starlette application: Open Inference Protocol routes, /predict, /metrics, OpenAPI.

Handlers only parse, validate and await; inference runs on the batcher's worker threads and
big-body parsing, pre- and post-processing on the thread pool, so the event loop stays free.

One module: every route with its error mapping, so handlers, the 4xx reasons and what the OpenAPI
document promises are read together.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tf2aif import __version__
from tf2aif.image.server import openapi
from tf2aif.image.server.batching import InferenceFailed, QueueFull, ShuttingDown
from tf2aif.image.server.errors import ApiError, ServerError
from tf2aif.image.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from tf2aif.image.server.model import ModelServer, State
from tf2aif.image.server.options import ServerOptions
from tf2aif.image.server.protocol import (
    check_outputs,
    encode_infer_response,
    json_safe,
    numpy_dtype,
    parse_infer_request,
)

__all__ = ["create_app"]

log = logging.getLogger(__name__)

HEADER_LENGTH = "inference-header-content-length"
JSON_TYPES = ("application/json",)
BINARY_TYPES = ("application/octet-stream",)
# Off the event loop: JSON over 64 KiB, binary bodies over 4 MiB (the NaN scan), responses
# writing over 16k values as JSON. Below that, the thread pool's hop (~40 us) costs more.
PARSE_IN_THREAD_BYTES = 64 * 1024
SCAN_IN_THREAD_BYTES = 4 * 1024 * 1024
ENCODE_IN_THREAD_VALUES = 16 * 1024
RETRY_AFTER_S = "1"


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _json({"error": message}, status, headers)


# ---- request helpers --------------------------------------------------------------------------


def _model(request: Request) -> ModelServer:
    model: ModelServer = request.app.state.model
    name = request.path_params.get("name")
    if name is not None and name != model.name:
        raise ApiError(404, f"unknown model {name!r}; this server serves {model.name!r}")
    version = request.path_params.get("version")
    if version is not None and version != model.version:
        raise ApiError(
            404, f"model {model.name!r} has no version {version!r}; it has {model.version!r}"
        )
    return model


def _require_ready(model: ModelServer) -> None:
    if model.state is State.READY:
        return
    reason = model.error if model.state is State.FAILED else model.state.value
    raise ApiError(
        503, f"model {model.name!r} is not ready: {reason}", headers={"Retry-After": RETRY_AFTER_S}
    )


def _header_length(headers: Headers) -> int | None:
    raw = headers.get(HEADER_LENGTH)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(
            400, f"Inference-Header-Content-Length must be an integer, got {raw!r}"
        ) from None


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _check_infer_content_type(headers: Headers) -> None:
    media = _media_type(headers)
    if media and media not in JSON_TYPES + BINARY_TYPES:
        raise ApiError(
            415,
            f"content type {media!r} is not accepted here; send application/json, or "
            "application/octet-stream with Inference-Header-Content-Length (binary tensors)",
        )


async def _read_body(headers: Headers, receive: Receive, limit: int) -> bytes:
    declared = headers.get("content-length", "")
    # ASCII digits only ("²".isdigit() is true); a length longer than the limit's is over it
    if (
        declared.isascii()
        and declared.isdigit()
        and (len(declared) > len(str(limit)) or int(declared) > limit)
    ):
        raise ApiError(413, f"request body of {declared} bytes is over the {limit}-byte limit")
    # straight from ASGI receive(): Request.stream() costs several microseconds per request
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise ApiError(400, "the client disconnected before sending the whole body")
        chunk, more = message.get("body", b""), message.get("more_body", False)
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return _decode_content(body, headers.get("content-encoding", ""), limit)


def _decode_content(body: bytes, encoding: str, limit: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise ApiError(415, f"content encoding {encoding!r} is not supported; use gzip or deflate")
    decoder = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        data = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ApiError(400, f"body is not valid {encoding} data: {exc}") from None
    if len(data) > limit:
        raise ApiError(413, f"decompressed request body is over the {limit}-byte limit")
    return data


async def _off_loop_if(slow: bool, function: Callable[..., Any], *args: Any) -> Any:
    """Slow work goes to the thread pool; quick work stays here, as the hop costs more."""
    if slow:
        return await run_in_threadpool(function, *args)
    return function(*args)


def _parse_is_slow(body: bytes, header_length: int | None) -> bool:
    """JSON is parsed value by value; binary tensors are only viewed (and scanned for NaN)."""
    json_bytes = len(body) if header_length is None else header_length
    return json_bytes > PARSE_IN_THREAD_BYTES or len(body) > SCAN_IN_THREAD_BYTES


def _json_values(parsed: Any, outputs: Mapping[str, np.ndarray]) -> int:
    """How many output values the response writes as JSON text (binary ones are copied)."""
    if parsed.outputs:
        return sum(outputs[o.name].size for o in parsed.outputs if not o.binary)
    return 0 if parsed.binary_output else sum(array.size for array in outputs.values())


async def _infer_batch(
    model: ModelServer, inputs: Mapping[str, np.ndarray]
) -> Mapping[str, np.ndarray]:
    assert model.batcher is not None
    try:
        return await model.batcher.submit(inputs)
    except QueueFull as exc:
        raise ApiError(
            503, f"server busy: {exc}; retry later", headers={"Retry-After": RETRY_AFTER_S}
        ) from None
    except ShuttingDown as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": RETRY_AFTER_S}) from None
    except InferenceFailed as exc:
        raise ApiError(500, str(exc)) from None


# ---- endpoints --------------------------------------------------------------------------------


async def live(request: Request) -> Response:
    return _json({"live": True})


async def server_ready(request: Request) -> Response:
    model: ModelServer = request.app.state.model
    return _json({"ready": model.ready}, 200 if model.ready else 503)


async def server_metadata(request: Request) -> Response:
    return _json({"name": "tf2aif", "version": __version__, "extensions": ["binary_tensor_data"]})


async def model_metadata(request: Request) -> Response:
    return _json(_model(request).metadata())


async def model_ready(request: Request) -> Response:
    model = _model(request)
    body = {"name": model.name, "ready": model.ready, "state": model.state.value}
    if model.error:
        body["error"] = model.error
    return _json(body, 200 if model.ready else 503)


async def model_config(request: Request) -> Response:
    return _json(_model(request).config())


async def repository_index(request: Request) -> Response:
    model: ModelServer = request.app.state.model
    state = "READY" if model.ready else "UNAVAILABLE"
    return _json([{"name": model.name, "version": model.version, "state": state}])


async def infer(request: Request) -> Response:
    return await _infer(_model(request), request.headers, request.receive)


async def _infer(model: ModelServer, headers: Headers, receive: Receive) -> Response:
    _require_ready(model)
    header_length = _header_length(headers)
    _check_infer_content_type(headers)
    body = await _read_body(headers, receive, model.options.max_body_bytes)
    parsed = await _off_loop_if(
        _parse_is_slow(body, header_length), _parse_and_check, model, body, header_length
    )
    outputs = await _infer_batch(model, parsed.inputs)
    content, json_length = await _off_loop_if(
        _json_values(parsed, outputs) > ENCODE_IN_THREAD_VALUES,
        lambda: encode_infer_response(
            model_name=model.name,
            model_version=model.version,
            request=parsed,
            outputs=outputs,
            specs=model.info.outputs,
        ),
    )
    if json_length is None:
        return Response(content, media_type="application/json")
    headers = {"Inference-Header-Content-Length": str(json_length)}
    return Response(content, media_type="application/octet-stream", headers=headers)


def _parse_and_check(model: ModelServer, body: bytes, header_length: int | None) -> Any:
    parsed = parse_infer_request(body, header_length)
    model.check_inputs(parsed.inputs)
    check_outputs(parsed.outputs, model.info.outputs)
    return parsed


async def predict(request: Request) -> Response:
    model = _model(request)
    _require_ready(model)
    if model.processing is None:
        raise ApiError(
            404,
            f"model {model.name!r} has no processing module; send tensors to "
            f"/v2/models/{model.name}/infer instead",
        )
    body = await _read_body(request.headers, request.receive, model.options.max_body_bytes)
    content_type = request.headers.get("content-type", "application/octet-stream")
    stages = model.metrics.stages
    started = time.perf_counter()
    try:
        raw_inputs = await run_in_threadpool(model.processing.preprocess, body, content_type)
    except Exception as exc:
        if type(exc).__name__.startswith("DecompressionBomb"):  # Pillow's, over the pixel budget
            raise ApiError(413, _over_pixel_budget(exc, model.options.max_image_pixels)) from None
        raise ApiError(
            400, f"preprocess rejected the payload: {type(exc).__name__}: {exc}"
        ) from None
    stages["preprocess"].observe(time.perf_counter() - started)
    inputs = _as_model_inputs(model, raw_inputs)
    model.check_inputs(inputs)
    outputs = await _infer_batch(model, inputs)
    started = time.perf_counter()
    try:
        result = await run_in_threadpool(
            _postprocess_to_json, model.processing.postprocess, outputs
        )
    except Exception as exc:
        raise ApiError(500, f"postprocess failed: {type(exc).__name__}: {exc}") from None
    stages["postprocess"].observe(time.perf_counter() - started)
    return Response(result, media_type="application/json")


def _over_pixel_budget(exc: Exception, budget: int) -> str:
    # Pillow words its limit as twice the budget (it only warns in between): say the budget
    size = re.search(r"(\d+) pixels", str(exc))
    pixels = f"{size.group(1)} pixels" if size else "more pixels"
    return (
        f"the image has {pixels}, over the budget of {budget} (width x height); the server's "
        "--max-image-pixels (env TF2AIF_MAX_IMAGE_PIXELS) sets it"
    )


def _as_model_inputs(model: ModelServer, raw: Any) -> dict[str, np.ndarray]:
    """preprocess() output as arrays of the model's dtypes (it may hand back lists or float64)."""
    if not isinstance(raw, Mapping):
        raise ApiError(
            500,
            f"preprocess must return a dict of inputs by name, it returned {type(raw).__name__}",
        )
    arrays = {}
    for name, value in raw.items():
        spec = next((s for s in model.info.inputs if s.name == name), None)
        dtype = numpy_dtype(spec.datatype) if spec else None
        try:
            arrays[name] = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise ApiError(
                400, f"preprocess output {name!r} is not a {dtype} array: {exc}"
            ) from None
    return arrays


def _postprocess_to_json(
    postprocess: Callable[[Any], Any], outputs: Mapping[str, np.ndarray]
) -> bytes:
    answer = json_safe(postprocess(dict(outputs)))
    return json.dumps(answer, separators=(",", ":"), allow_nan=False).encode()


async def metrics_endpoint(request: Request) -> Response:
    model: ModelServer = request.app.state.model
    return Response(model.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)


async def openapi_document(request: Request) -> Response:
    return _json(openapi.document(request.app.state.model))


async def docs_page(request: Request) -> Response:
    return HTMLResponse(openapi.docs_html(openapi.document(request.app.state.model)))


# ---- errors and metrics -----------------------------------------------------------------------


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404:
        message = f"no route {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return _error(exc.status_code, message, exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path)
    return _error(500, f"internal error: {type(exc).__name__}: {exc}")


class RequestMetrics:
    """Counts requests by route name and status, times them, tracks in-flight inference.

    It also answers POST /infer of the served model itself: Starlette's router, request objects
    and exception middleware cost about 25 us per request, a fifth of the server's own time for
    a small model. Every other path, and /infer for an unknown model, goes through Starlette.
    """

    def __init__(self, app: ASGIApp, model: ModelServer) -> None:
        self.app = app
        self.model = model
        self.metrics = model.metrics
        self.infer_paths = frozenset(
            {
                f"/v2/models/{model.name}/infer",
                f"/v2/models/{model.name}/versions/{model.version}/infer",
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            started = time.perf_counter()
            await _refuse_websocket(scope, receive, send)
            self.metrics.answered("websocket", WEBSOCKET_REFUSED, time.perf_counter() - started)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"] in self.infer_paths:
            await self._infer(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        inference = scope["path"].endswith(("/infer", "/predict"))
        if inference:
            self.metrics.inflight.inc()
        try:
            await self.app(scope, receive, capture)
        finally:
            if inference:
                self.metrics.inflight.dec()
            endpoint = getattr(scope.get("route"), "name", None) or "unmatched"
            self.metrics.answered(endpoint, status, time.perf_counter() - started)

    async def _infer(self, scope: Scope, receive: Receive, send: Send) -> None:
        started, status = time.perf_counter(), 500
        self.metrics.inflight.inc()
        try:
            try:
                response = await _infer(self.model, Headers(scope=scope), receive)
            except ApiError as exc:
                response = _error(exc.status, exc.message, exc.headers)
            except Exception as exc:
                log.exception("unexpected error on %s", scope["path"])
                response = _error(500, f"internal error: {type(exc).__name__}: {exc}")
            status = response.status_code
            await response(scope, receive, send)
        finally:
            self.metrics.inflight.dec()
            self.metrics.answered("infer", status, time.perf_counter() - started)


WEBSOCKET_REFUSED = 400


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """No route speaks WebSocket: answer the upgrade with a 400 and a reason (ASGI's denial
    response), not the bare 403 a server sends when an app just closes the socket."""
    message = (
        f"WebSocket is not served here ({scope.get('path', '')}): this server answers plain "
        "HTTP requests; send them without 'Upgrade: websocket' (see /docs)"
    )
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": WEBSOCKET_REFUSED,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


# ---- assembly ---------------------------------------------------------------------------------


def _model_routes(
    suffix: str, endpoint: Callable[..., Any], name: str, methods: list[str]
) -> list[Route]:
    return [
        Route(f"/v2/models/{{name}}{suffix}", endpoint, methods=methods, name=name),
        Route(
            f"/v2/models/{{name}}/versions/{{version}}{suffix}",
            endpoint,
            methods=methods,
            name=name,
        ),
    ]


def routes() -> list[Route]:
    return [  # in order of traffic: the router tries each route in turn
        *_model_routes("/infer", infer, "infer", ["POST"]),
        *_model_routes("/predict", predict, "predict", ["POST"]),
        Route("/v2/health/live", live, methods=["GET"], name="live"),
        Route("/v2/health/ready", server_ready, methods=["GET"], name="ready"),
        Route("/v2", server_metadata, methods=["GET"], name="server_metadata"),
        Route("/v2/repository/index", repository_index, methods=["POST"], name="repository_index"),
        *_model_routes("", model_metadata, "model_metadata", ["GET"]),
        *_model_routes("/ready", model_ready, "model_ready", ["GET"]),
        *_model_routes("/config", model_config, "model_config", ["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"], name="metrics"),
        Route("/openapi.json", openapi_document, methods=["GET"], name="openapi"),
        Route("/docs", docs_page, methods=["GET"], name="docs"),
    ]


def create_app(
    options: ServerOptions,
    *,
    model: ModelServer | None = None,
    on_failure: Callable[[str], None] | None = None,
    serve_grpc: bool = False,
) -> Starlette:
    """The ASGI app; loading starts when the app starts (lifespan) and runs in the background.
    With `serve_grpc`, the gRPC endpoint (options.grpc_port) runs in the same event loop."""
    model = model or ModelServer(options)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        grpc_endpoint = None
        if serve_grpc and options.grpc_port:
            from tf2aif.image.server.grpc_service import (  # grpcio only when serving it
                start_server,
                warm_inline,
            )

            try:
                grpc_endpoint = await start_server(model, options)
            except ServerError as exc:
                if on_failure is not None:
                    on_failure(str(exc))
                raise
            app.state.begin_draining = grpc_endpoint.begin_draining
        model.start(on_failure=on_failure)
        if grpc_endpoint is not None:
            grpc_endpoint.readiness.follow(model, then=lambda: warm_inline(model))
        yield
        if grpc_endpoint is not None:
            await grpc_endpoint.stop(options.graceful_timeout_s)
        # the server has already let in-flight requests finish; drain the batcher off the loop
        await run_in_threadpool(model.stop, options.graceful_timeout_s)

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.model = model
    app.state.begin_draining = lambda: None  # what the server calls on SIGTERM (gRPC health)
    app.add_middleware(RequestMetrics, model=model)
    return app

"""A minimal real Open Inference Protocol server for the bench client's tests.

One model `toy` (input `x` FP32 [-1, 4], output `y` = x * 2). Behaviour comes from the environment:
  TOY_SERVICE_MS   time each inference holds the single "device" (a lock), so capacity = 1000/ms req/s
  TOY_FAIL_EVERY   every Nth infer request answers 500
The /metrics page exports a `toy_stage_seconds` histogram with a `stage` label, as tf2aif servers do.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SERVICE_S = float(os.environ.get("TOY_SERVICE_MS", "0")) / 1e3
FAIL_EVERY = int(os.environ.get("TOY_FAIL_EVERY", "0"))
METADATA = {
    "name": "toy",
    "versions": ["1"],
    "platform": "toy",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
}
registry = CollectorRegistry()
stages = Histogram("toy_stage_seconds", "time per stage", ["model", "stage"], registry=registry)
device = asyncio.Lock()
served = 0


async def ready(request: Request) -> Response:
    return JSONResponse({"ready": True})


async def index(request: Request) -> Response:
    return JSONResponse([{"name": "toy", "version": "1", "state": "READY"}])


async def metadata(request: Request) -> Response:
    if request.path_params["model"] != "toy":
        return JSONResponse({"error": "unknown model"}, status_code=404)
    return JSONResponse(METADATA)


async def infer(request: Request) -> Response:
    global served
    served += 1
    if FAIL_EVERY and served % FAIL_EVERY == 0:
        return JSONResponse({"error": "injected failure"}, status_code=500)
    start = time.perf_counter()
    x = _decode(await request.body(), request.headers)
    decoded = time.perf_counter()
    async with device:
        began = time.perf_counter()
        if SERVICE_S:
            await asyncio.sleep(SERVICE_S)
        y = x * 2
    done = time.perf_counter()
    stages.labels("toy", "preprocess").observe(decoded - start)
    stages.labels("toy", "queue").observe(began - decoded)
    stages.labels("toy", "inference").observe(done - began)
    out = {"name": "y", "datatype": "FP32", "shape": list(y.shape), "data": y.ravel().tolist()}
    return JSONResponse({"model_name": "toy", "outputs": [out]})


def _decode(body: bytes, headers) -> np.ndarray:
    length = headers.get("inference-header-content-length")
    if length is None:
        spec = json.loads(body)["inputs"][0]
        return np.asarray(spec["data"], dtype=np.float32).reshape(spec["shape"])
    spec = json.loads(body[: int(length)])["inputs"][0]
    return np.frombuffer(body[int(length) :], dtype=np.float32).reshape(spec["shape"])


async def metrics(request: Request) -> Response:
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")


app = Starlette(
    routes=[
        Route("/v2/health/ready", ready),
        Route("/v2/repository/index", index, methods=["POST"]),
        Route("/v2/models/{model}", metadata),
        Route("/v2/models/{model}/infer", infer, methods=["POST"]),
        Route("/metrics", metrics),
    ]
)

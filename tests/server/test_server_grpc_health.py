"""grpc.health.v1 on the gRPC port of a real `python -m tf2aif.image.server`, asked with the
official health client stubs: NOT_SERVING while loading, SERVING once ready, NOT_SERVING from
the moment the server drains (while in-flight requests still finish), NOT_FOUND for other names.
"""

from __future__ import annotations

import queue
import threading
import time

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from .serving import ServerProcess, running_server

pytestmark = pytest.mark.conversion  # the digits artifacts are converted by the fixture

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICES = ("", "inference.GRPCInferenceService")


def _check(address: str, service: str = "") -> int:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_serving_once_ready_for_the_server_and_the_inference_service(digits_artifacts):
    with running_server(digits_artifacts["onnxruntime"]) as server:
        deadline = time.monotonic() + 10  # the health thread hears of readiness a moment later
        while _check(server.grpc_address) != SERVING and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [_check(server.grpc_address, s) for s in SERVICES] == [SERVING, SERVING]
        with pytest.raises(grpc.RpcError) as caught:
            _check(server.grpc_address, "inference.Nope")
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_not_serving_while_loading_then_serving(digits_artifacts):
    """TF takes seconds to import and load: health says NOT_SERVING until the model is ready,
    and a Watch stream sees exactly that change, in that order."""
    server = ServerProcess(digits_artifacts["tf"])
    seen: list[tuple[int, bool]] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                status = _check(server.grpc_address)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE  # not listening yet
                time.sleep(0.02)
                continue
            with grpc.insecure_channel(server.grpc_address) as channel:
                ready = pb_grpc.GRPCInferenceServiceStub(channel).ServerReady(
                    pb.ServerReadyRequest(), timeout=5
                )
            seen.append((status, ready.ready))
            if status == SERVING:
                break
            if len(seen) == 1:  # the first answer was NOT_SERVING: watch the change happen
                watched = _watch(server.grpc_address, count=2)
            time.sleep(0.05)
        assert seen[0] == (NOT_SERVING, False), seen[:3]
        assert seen[-1] == (SERVING, True), seen[-3:]
        # never SERVING before ServerReady says ready (the reverse lags by the health thread)
        assert all(ready for status, ready in seen if status == SERVING)
        assert watched.get(timeout=30) == [NOT_SERVING, SERVING]
    finally:
        server.terminate()


def _watch(address: str, count: int) -> queue.Queue:
    """The first `count` statuses a Watch stream on "" sends, delivered on a queue."""
    result: queue.Queue = queue.Queue()

    def run() -> None:
        with grpc.insecure_channel(address) as channel:
            stream = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=""), timeout=60
            )
            statuses = []
            try:
                for answer in stream:
                    statuses.append(answer.status)
                    if len(statuses) == count:
                        break
            except grpc.RpcError as exc:
                statuses.append(exc.code())
            finally:
                stream.cancel()
            result.put(statuses)

    threading.Thread(target=run, daemon=True).start()
    return result


def test_not_serving_from_the_start_of_draining_while_in_flight_requests_finish(
    digits_artifacts, held_out, tf_reference
):
    images, _ = held_out
    server = ServerProcess(
        digits_artifacts["onnxruntime"],
        max_queue_delay_ms=1500,
        max_batch_size=8,
        adaptive_batching=False,
    )
    server.wait_ready()
    deadline = time.monotonic() + 10
    while _check(server.grpc_address) != SERVING and time.monotonic() < deadline:
        time.sleep(0.02)
    watched = _watch(server.grpc_address, count=2)
    time.sleep(0.3)  # the stream has sent SERVING
    answer: dict = {}

    def slow_request() -> None:
        request = pb.ModelInferRequest(model_name="digits")
        request.inputs.add(name="image", datatype="FP32", shape=[1, 8, 8, 1])
        request.raw_input_contents.append(images[:1].astype(np.float32).tobytes())
        with grpc.insecure_channel(server.grpc_address) as channel:
            started = time.perf_counter()
            response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
            answer.update(response=response, seconds=time.perf_counter() - started)

    def slow_http_request() -> None:  # uvicorn waits for it before the app's own shutdown
        body = {"inputs": [{"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32"}]}
        body["inputs"][0]["data"] = images[:1].reshape(-1).tolist()
        response = httpx.post(server.url + "/v2/models/digits/infer", json=body, timeout=30)
        answer.update(http=response.status_code)

    threads = [threading.Thread(target=slow_request), threading.Thread(target=slow_http_request)]
    for thread in threads:
        thread.start()
    time.sleep(0.4)  # both requests now wait in the batcher for company
    sent = time.perf_counter()
    server.process.send_signal(15)
    statuses = watched.get(timeout=30)
    heard = time.perf_counter() - sent
    assert statuses == [SERVING, NOT_SERVING]
    assert heard < 1.0  # at the signal, not after the 1.5 s the in-flight request still waits
    for thread in threads:
        thread.join(30)
    assert answer["http"] == 200
    values = np.frombuffer(answer["response"].raw_output_contents[0], np.float32)
    np.testing.assert_allclose(values.reshape(1, 10), tf_reference[:1], atol=1e-5)
    assert answer["seconds"] >= 1.4  # held for the queue delay, then answered
    server.process.wait(30)

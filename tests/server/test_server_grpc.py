"""The gRPC endpoint (Open Inference Protocol) of a real `python -m tf2aif.image.server`, called with
tritonclient.grpc unchanged, and with tritonclient's messages for typed contents and bad requests.
"""

from __future__ import annotations

import asyncio
import socket

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException

from .serving import ServerProcess, running_server, sample_value

pytestmark = pytest.mark.conversion  # the digits artifacts are converted by the fixture
MODEL = "digits"


@pytest.fixture(scope="module")
def grpc_server(digits_artifacts):
    with running_server(digits_artifacts["onnxruntime"], max_body_bytes=200_000) as server:
        yield server


@pytest.fixture
def stub(grpc_server):
    with grpc.insecure_channel(grpc_server.grpc_address) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def _triton_infer(client: triton.InferenceServerClient, images: np.ndarray) -> np.ndarray:
    tensor = triton.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    result = client.infer(MODEL, [tensor], outputs=[triton.InferRequestedOutput("output_0")])
    return result.as_numpy("output_0")


def test_tritonclient_health_metadata_and_infer(grpc_server, held_out, tf_reference):
    images, _ = held_out
    client = triton.InferenceServerClient(grpc_server.grpc_address)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    server = client.get_server_metadata()
    assert (server.name, list(server.extensions)) == ("tf2aif", ["binary_tensor_data"])
    metadata = client.get_model_metadata(MODEL, as_json=True)
    assert metadata["name"] == MODEL and metadata["versions"] == ["1"]
    assert metadata["platform"] == "onnxruntime"
    assert metadata["inputs"] == [
        {"name": "image", "datatype": "FP32", "shape": ["-1", "8", "8", "1"]}
    ]
    assert metadata["outputs"] == [{"name": "output_0", "datatype": "FP32", "shape": ["-1", "10"]}]
    np.testing.assert_allclose(_triton_infer(client, images), tf_reference, atol=1e-5)
    np.testing.assert_allclose(_triton_infer(client, images[:1]), tf_reference[:1], atol=1e-5)


def test_typed_contents_in_typed_contents_out(stub, held_out, tf_reference):
    images, _ = held_out
    request = pb.ModelInferRequest(model_name=MODEL, id="req-7")
    tensor = request.inputs.add(name="image", datatype="FP32", shape=images[:4].shape)
    tensor.contents.fp32_contents.extend(images[:4].reshape(-1).tolist())
    response = stub.ModelInfer(request, timeout=10)
    assert (response.model_name, response.model_version, response.id) == (MODEL, "1", "req-7")
    assert not response.raw_output_contents
    (output,) = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("output_0", "FP32", [4, 10])
    values = np.array(output.contents.fp32_contents, dtype=np.float32).reshape(4, 10)
    np.testing.assert_allclose(values, tf_reference[:4], atol=1e-5)


def _raw_request(images: np.ndarray, **changes: object) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name="image", datatype="FP32", shape=images.shape)
    request.raw_input_contents.append(images.astype(np.float32).tobytes())
    for name, value in changes.items():
        setattr(request, name, value)
    return request


def _bad_requests(
    images: np.ndarray,
) -> dict[str, tuple[pb.ModelInferRequest, grpc.StatusCode, str]]:
    one = images[:1]
    cases: dict[str, tuple[pb.ModelInferRequest, grpc.StatusCode, str]] = {}
    invalid = grpc.StatusCode.INVALID_ARGUMENT

    def case(key: str, request: pb.ModelInferRequest, text: str, code=invalid) -> None:
        cases[key] = (request, code, text)

    case(
        "unknown model",
        _raw_request(one, model_name="digitz"),
        "unknown model 'digitz'",
        grpc.StatusCode.NOT_FOUND,
    )
    case(
        "unknown version",
        _raw_request(one, model_version="9"),
        "has no version '9'",
        grpc.StatusCode.NOT_FOUND,
    )
    request = _raw_request(one)
    request.inputs[0].shape[:] = [1, 8, 8]
    case("wrong rank", request, "shape [1, 8, 8] does not fit the model's [-1, 8, 8, 1]")
    request = _raw_request(one)
    request.raw_input_contents[0] = b"\0" * 10
    case("wrong size", request, "needs 256 bytes, raw_input_contents has 10")
    request = _raw_request(one)
    request.inputs[0].datatype = "FP33"
    case("unknown datatype", request, "unknown datatype 'FP33'")
    request = _raw_request(one)
    request.inputs[0].datatype = "INT32"
    case("wrong datatype", request, "datatype INT32 given, the model takes FP32")
    request = _raw_request(one)
    request.inputs[0].name = "imag"
    case("unknown input", request, "unknown input 'imag'")
    request = _raw_request(one)
    request.raw_input_contents.append(b"")
    case("extra raw", request, "raw_input_contents has 2 entries for 1 inputs")
    case("no inputs", pb.ModelInferRequest(model_name=MODEL), "the request has no inputs")
    nan = one.copy()
    nan[0, 0, 0, 0] = np.nan
    case("NaN", _raw_request(nan), "holds NaN or Inf")
    request = _raw_request(one)
    request.outputs.add(name="output_9")
    case("unknown output", request, "unknown output 'output_9'")
    request = _raw_request(one)
    request.inputs[0].shape[:] = [10**9, 8, 8, 1]
    case("huge shape", request, "over the 200000-byte limit", grpc.StatusCode.RESOURCE_EXHAUSTED)
    request = _raw_request(one)
    request.inputs[0].shape[:] = [0, 2**62, 2**62, 1]
    request.raw_input_contents[0] = b""
    case(
        "huge empty shape",
        request,
        "over the 200000-byte limit",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    typed = pb.ModelInferRequest(model_name=MODEL)
    tensor = typed.inputs.add(name="image", datatype="FP32", shape=[1, 8, 8, 1])
    tensor.contents.int_contents.extend([0] * 64)
    case("wrong contents field", typed, "takes fp32_contents, not int_contents")
    typed = pb.ModelInferRequest(model_name=MODEL)
    tensor = typed.inputs.add(name="image", datatype="FP32", shape=[1, 8, 8, 1])
    tensor.contents.fp32_contents.extend([0.0] * 63)
    case("short contents", typed, "needs 64 values, fp32_contents has 63")
    return cases


def test_bad_requests_get_a_clear_status_and_the_server_keeps_serving(
    grpc_server, stub, held_out, tf_reference
):
    images, _ = held_out
    for key, (request, code, text) in _bad_requests(images).items():
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=10)
        assert caught.value.code() == code, (key, caught.value.details())
        assert text in caught.value.details(), (key, caught.value.details())
    # a message over max_body_bytes is refused by grpc itself, before any decoding
    big = np.zeros((1000, 8, 8, 1), np.float32)  # 256 kB
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(_raw_request(big), timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelMetadata(pb.ModelMetadataRequest(name="digitz"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    response = stub.ModelInfer(_raw_request(images[:2]), timeout=10)
    values = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(2, 10)
    np.testing.assert_allclose(values, tf_reference[:2], atol=1e-5)
    # tritonclient reports the same status and text
    client = triton.InferenceServerClient(grpc_server.grpc_address)
    tensor = triton.InferInput("image", [1, 8, 8], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 8, 8), np.float32))
    with pytest.raises(InferenceServerException, match="does not fit the model's"):
        client.infer(MODEL, [tensor])


def test_grpc_requests_show_in_the_shared_metrics(grpc_server, stub, held_out):
    images, _ = held_out
    before = grpc_server.metrics()["tf2aif_requests"]

    def count(status: str) -> float:
        samples = grpc_server.metrics()["tf2aif_requests"]
        try:
            return sample_value(
                samples, "tf2aif_requests_total", endpoint="grpc_infer", status=status
            )
        except KeyError:
            return 0.0

    assert before is not None
    ok, bad = count("200"), count("400")
    stub.ModelInfer(_raw_request(images[:1]), timeout=10)
    request = _raw_request(images[:1])
    request.inputs[0].datatype = "INT8"
    with pytest.raises(grpc.RpcError):
        stub.ModelInfer(request, timeout=10)
    assert (count("200"), count("400")) == (ok + 1, bad + 1)


def test_queue_full_is_unavailable(digits_artifacts, held_out):
    images, _ = held_out
    options = {
        "max_queue_size": 2,
        "max_queue_delay_ms": 1500,
        "max_batch_size": 64,
        "adaptive_batching": False,
    }
    with running_server(digits_artifacts["onnxruntime"], **options) as server:

        async def fire() -> list[grpc.StatusCode]:
            async with grpc.aio.insecure_channel(server.grpc_address) as channel:
                aio_stub = pb_grpc.GRPCInferenceServiceStub(channel)

                async def one() -> grpc.StatusCode:
                    try:
                        await aio_stub.ModelInfer(_raw_request(images[:1]), timeout=10)
                    except grpc.aio.AioRpcError as exc:
                        assert "server busy" in exc.details()
                        return exc.code()
                    return grpc.StatusCode.OK

                return await asyncio.gather(*(one() for _ in range(6)))

        codes = asyncio.run(fire())
        assert sorted(code.name for code in codes) == ["OK", "OK"] + ["UNAVAILABLE"] * 4


def test_grpc_port_taken_fails_start_up_with_a_clear_message(digits_artifacts):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(digits_artifacts["onnxruntime"], grpc_port=port)
        assert server.process.wait(60) == 1
        assert f"gRPC cannot listen on 127.0.0.1:{port}" in server.logs()


def test_grpc_port_zero_turns_grpc_off(digits_artifacts):
    with running_server(digits_artifacts["onnxruntime"], grpc_port=0) as server:
        assert server.grpc_port == 0
        server.terminate()
        logs = server.logs()
    assert "Uvicorn running" in logs
    assert "gRPC (Open Inference Protocol) on" not in logs


def test_cheap_requests_run_inline_when_idle_and_larger_ones_through_the_batcher(
    grpc_server, held_out, tf_reference
):
    """digits' runtime call costs microseconds: a request of up to `inline_rows` rows runs on
    the event loop (no queue stage), a larger one goes through the batcher's queue, and both
    answer the same; concurrent requests all get their own rows."""
    import httpx

    images, _ = held_out
    batching = httpx.get(f"{grpc_server.url}/v2/models/{MODEL}").json()["parameters"]["batching"]
    limit = batching["inline_rows"]
    assert limit >= 1

    def queued() -> float:
        samples = grpc_server.metrics()["tf2aif_stage_duration_seconds"]
        return sample_value(samples, "tf2aif_stage_duration_seconds_count", stage="queue")

    def infer(rows: np.ndarray) -> np.ndarray:
        with grpc.insecure_channel(grpc_server.grpc_address) as channel:
            response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_raw_request(rows))
        return np.frombuffer(response.raw_output_contents[0], np.float32).reshape(len(rows), 10)

    before = queued()
    np.testing.assert_allclose(infer(images[:1]), tf_reference[:1], atol=1e-5)
    assert queued() == before  # ran inline
    repeat = -(-(limit + 1) // len(images))  # more rows than inline_rows
    many, expected = np.concatenate([images] * repeat), np.concatenate([tf_reference] * repeat)
    np.testing.assert_allclose(infer(many), expected, atol=1e-5)
    assert queued() == before + 1  # queued for a worker

    async def fire(count: int) -> list[np.ndarray]:
        async with grpc.aio.insecure_channel(grpc_server.grpc_address) as channel:
            aio_stub = pb_grpc.GRPCInferenceServiceStub(channel)

            async def one(index: int) -> np.ndarray:
                response = await aio_stub.ModelInfer(_raw_request(images[index : index + 1]))
                return np.frombuffer(response.raw_output_contents[0], np.float32)

            return await asyncio.gather(*(one(i % len(images)) for i in range(count)))

    for index, answer in enumerate(asyncio.run(fire(256))):
        np.testing.assert_allclose(answer, tf_reference[index % len(images)], atol=1e-5)


def test_tflite_runs_inline_with_its_own_interpreter_on_the_event_loop(
    digits_artifacts, held_out, tf_reference
):
    """TFLite interpreters are per thread: the event loop's own one is made before health says
    SERVING, and requests that run there answer like those through the batcher."""
    import httpx

    images, _ = held_out
    with running_server(digits_artifacts["tflite"]) as server:
        batching = httpx.get(f"{server.url}/v2/models/{MODEL}").json()["parameters"]["batching"]
        assert batching["inline_rows"] >= 1
        client = triton.InferenceServerClient(server.grpc_address)
        for index in range(8):
            np.testing.assert_allclose(
                _triton_infer(client, images[index : index + 1]),
                tf_reference[index : index + 1],
                atol=1e-5,
            )
        np.testing.assert_allclose(_triton_infer(client, images), tf_reference, atol=1e-5)

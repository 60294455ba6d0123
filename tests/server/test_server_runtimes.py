"""The real server on real converted digits models, one per runtime, talked to by tritonclient."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from .conftest import digit_png
from .serving import running_server

pytestmark = pytest.mark.conversion

RUNTIMES = ("tf", "tflite", "openvino", "onnxruntime")
ATOL = 1e-4  # fp32 conversions agree with TF to ~1e-6 on softmax outputs


@pytest.fixture(scope="module", params=RUNTIMES)
def server(request, digits_artifacts):
    with running_server(digits_artifacts[request.param]) as process:
        process.runtime = request.param
        yield process


def _client(server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"))


def _infer(client, images: np.ndarray, *, binary: bool, version: str = "") -> np.ndarray:
    tensor = triton.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images.astype(np.float32), binary_data=binary)
    wanted = [triton.InferRequestedOutput("output_0", binary_data=binary)]
    result = client.infer("digits", [tensor], outputs=wanted, model_version=version)
    return result.as_numpy("output_0")


def test_tritonclient_binary_matches_tf(server, held_out, tf_reference):
    images, _ = held_out
    outputs = _infer(_client(server), images[:16], binary=True)
    assert outputs.shape == (16, 10)
    np.testing.assert_allclose(outputs, tf_reference[:16], atol=ATOL)


def test_tritonclient_json_matches_tf(server, held_out, tf_reference):
    images, _ = held_out
    outputs = _infer(_client(server), images[16:20], binary=False, version="1")
    np.testing.assert_allclose(outputs, tf_reference[16:20], atol=ATOL)


def test_tritonclient_all_outputs_binary_by_default(server, held_out, tf_reference):
    images, _ = held_out
    tensor = triton.InferInput("image", [1, 8, 8, 1], "FP32")
    tensor.set_data_from_numpy(images[:1], binary_data=True)
    result = _client(server).infer("digits", [tensor])  # sends binary_data_output: true
    np.testing.assert_allclose(result.as_numpy("output_0"), tf_reference[:1], atol=ATOL)


def test_tritonclient_metadata_health_and_config(server):
    client = _client(server)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits") and client.is_model_ready("digits", "1")
    assert not client.is_model_ready("digits", "2")
    metadata = client.get_model_metadata("digits")
    assert metadata["platform"] == server.runtime
    assert metadata["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 8, 8, 1]}]
    assert metadata["outputs"] == [{"name": "output_0", "datatype": "FP32", "shape": [-1, 10]}]
    config = client.get_model_config("digits")
    assert config["max_batch_size"] == 32
    # digits: a runtime call costs about the same at batch 1 and 2, so batching pays
    batching = metadata["parameters"]["batching"]
    assert batching["adaptive"] is True and 2 <= batching["batch_cap"] <= 32
    assert list(batching["per_row_us"])[:2] == ["1", "2"]
    assert config["dynamic_batching"]["preferred_batch_size"] == [batching["batch_cap"]]
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]


def test_predict_png_returns_the_digit(server, held_out, tf_reference):
    images, _ = held_out
    for index in range(8):
        response = httpx.post(
            f"{server.url}/v2/models/digits/predict",
            content=digit_png(images[index]),
            headers={"content-type": "image/png"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["digit"] == int(np.argmax(tf_reference[index]))

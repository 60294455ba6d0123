"""Hostile gRPC input against a real server: arbitrary bytes, and well-formed messages with
wrong sizes, huge or negative shapes, unknown models and wrong datatypes. Invariant: every
call ends quickly with OK or a client-error status (never INTERNAL, UNKNOWN or a deadline),
and the server keeps answering a valid request."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.server.grpc_messages import message
from tf2aif.server.protocol import DATATYPES

from .serving import running_server

pytestmark = [pytest.mark.fuzz, pytest.mark.conversion]

CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
ModelInferRequest = message("ModelInferRequest")
ModelInferResponse = message("ModelInferResponse")
DEADLINE_S = 10


@pytest.fixture(scope="module")
def channel(digits_artifacts):
    with (
        running_server(digits_artifacts["onnxruntime"], max_body_bytes=100_000) as server,
        grpc.insecure_channel(server.grpc_address) as channel,
    ):
        yield channel


def _call(channel: grpc.Channel, method: str, body: bytes) -> grpc.StatusCode:
    rpc = channel.unary_unary(f"/inference.GRPCInferenceService/{method}")  # bytes in, bytes out
    try:
        rpc(body, timeout=DEADLINE_S)
    except grpc.RpcError as exc:
        assert exc.code() in CLIENT_ERRORS, (exc.code(), exc.details())
        assert exc.details(), "an error status without a reason"
        return exc.code()
    return grpc.StatusCode.OK


def _still_serving(channel: grpc.Channel) -> None:
    request = ModelInferRequest(model_name="digits")
    request.inputs.add(name="image", datatype="FP32", shape=[1, 8, 8, 1])
    request.raw_input_contents.append(np.zeros(64, np.float32).tobytes())
    rpc = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=ModelInferRequest.SerializeToString,
        response_deserializer=ModelInferResponse.FromString,
    )
    response = rpc(request, timeout=DEADLINE_S)
    assert len(response.raw_output_contents[0]) == 40


METHODS = ["ModelInfer", "ModelReady", "ModelMetadata", "ServerLive", "ServerMetadata"]


@given(method=st.sampled_from(METHODS), body=st.binary(max_size=512))
def test_arbitrary_bytes_never_hurt_the_server(channel, method, body):
    _call(channel, method, body)
    _still_serving(channel)


_dims = st.one_of(
    st.integers(min_value=-3, max_value=12),
    st.sampled_from([0, 8, 2**31, 2**40, 2**62, 2**63 - 1, -(2**63)]),
)
_datatypes = st.one_of(st.sampled_from(sorted(DATATYPES)), st.text(max_size=6))
_names = st.one_of(st.just("image"), st.text(max_size=8))


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    request = ModelInferRequest(
        model_name=draw(st.one_of(st.just("digits"), st.text(max_size=8))),
        model_version=draw(st.sampled_from(["", "1", "2", "x"])),
    )
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        datatype = draw(_datatypes)
        tensor = request.inputs.add(
            name=draw(_names), datatype=datatype, shape=draw(st.lists(_dims, max_size=5))
        )
        if raw:
            request.raw_input_contents.append(draw(st.binary(max_size=600)))
        else:
            field = draw(
                st.sampled_from(
                    ["fp32_contents", "int_contents", "bytes_contents", "bool_contents"]
                )
            )
            values = {
                "fp32_contents": st.floats(width=32),
                "int_contents": st.integers(min_value=-(2**31), max_value=2**31 - 1),
                "bytes_contents": st.binary(max_size=4),
                "bool_contents": st.booleans(),
            }[field]
            getattr(tensor.contents, field).extend(draw(st.lists(values, max_size=130)))
    if raw and draw(st.booleans()):
        request.raw_input_contents.append(b"")  # one entry too many
    for name in draw(st.lists(st.sampled_from(["output_0", "output_9", ""]), max_size=2)):
        request.outputs.add(name=name)
    return request.SerializeToString()


@given(body=_requests())
def test_well_formed_hostile_requests_get_client_errors(channel, body):
    _call(channel, "ModelInfer", body)


def test_the_server_still_serves_after_the_hostile_requests(channel):
    _still_serving(channel)

"""The committed gRPC descriptor is what grpcio-tools makes of the committed proto, and it
speaks the same wire protocol as tritonclient's (messages, field numbers and types, service)."""

from __future__ import annotations

import subprocess
import sys

from google.protobuf import descriptor_pb2

from .serving import REPO

SERVER = REPO / "builder" / "tf2aif" / "server"


def test_regenerating_the_descriptor_gives_the_committed_bytes(tmp_path):
    # in a process of its own: grpc_tools' protobuf crashes beside grpc and upb already loaded
    script = REPO / "scripts" / "gen_grpc_stubs.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, capture_output=True)
    name = "grpc_predict_v2.binpb"
    assert (tmp_path / name).read_bytes() == (SERVER / name).read_bytes()


def _own_descriptor() -> descriptor_pb2.FileDescriptorProto:
    files = descriptor_pb2.FileDescriptorSet.FromString(
        (SERVER / "grpc_predict_v2.binpb").read_bytes()
    )
    return files.file[0]


def _fields(message: descriptor_pb2.DescriptorProto, prefix: str = "") -> dict:
    found = {}
    for field in message.field:
        found[f"{prefix}{message.name}.{field.name}"] = (
            field.number,
            field.type,
            field.label,
            field.type_name,
        )
    for nested in message.nested_type:
        found |= _fields(nested, f"{prefix}{message.name}.")
    return found


def test_the_proto_matches_tritonclients_on_the_wire():
    from tritonclient.grpc import service_pb2

    theirs = descriptor_pb2.FileDescriptorProto()
    service_pb2.DESCRIPTOR.CopyToProto(theirs)
    ours = _own_descriptor()
    assert ours.package == theirs.package == "inference"
    (service,) = ours.service
    their_service = next(s for s in theirs.service if s.name == service.name)
    their_methods = {m.name: (m.input_type, m.output_type) for m in their_service.method}
    assert {m.name for m in service.method} == {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    }
    for method in service.method:
        assert their_methods[method.name] == (method.input_type, method.output_type)
    their_fields = {}
    for message in theirs.message_type:
        their_fields |= _fields(message)
    our_fields = {}
    for message in ours.message_type:
        our_fields |= _fields(message)
    assert len(our_fields) > 60
    for name, wire in our_fields.items():
        assert their_fields.get(name) == wire, name


def test_messages_load_beside_tritonclients_and_round_trip():
    from tritonclient.grpc import service_pb2

    from tf2aif.server.grpc_messages import METHODS, SERVICE, message

    assert SERVICE == "inference.GRPCInferenceService"
    assert set(METHODS) == {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    }
    theirs = service_pb2.ModelInferRequest(model_name="digits", id="7")
    tensor = theirs.inputs.add(name="image", datatype="FP32", shape=[1, 2])
    tensor.contents.fp32_contents.extend([0.5, 1.5])
    theirs.parameters["priority"].int64_param = 3
    theirs.raw_input_contents.append(b"\x01\x02")
    ours = message("ModelInferRequest").FromString(theirs.SerializeToString())
    assert ours.SerializeToString() == theirs.SerializeToString()
    assert list(ours.inputs[0].contents.fp32_contents) == [0.5, 1.5]
    assert ours.parameters["priority"].int64_param == 3

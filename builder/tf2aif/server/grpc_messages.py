"""The `inference.*` message classes and service of the Open Inference Protocol over gRPC, built
at import time from grpc_predict_v2.binpb (grpcio-tools' compiled grpc_predict_v2.proto).

The classes live in a descriptor pool of their own: another module defining the same messages
(tritonclient's, KServe's, MLServer's) can be imported in the same process, and no protobuf
generated-code version check ties images to one protobuf release.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["METHODS", "SERVICE", "generic_handler", "message"]

DESCRIPTOR_FILE = Path(__file__).with_name("grpc_predict_v2.binpb")
SERVICE = "inference.GRPCInferenceService"

_pool = descriptor_pool.DescriptorPool()
for _file in descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_FILE.read_bytes()).file:
    _pool.Add(_file)


def _message_class(descriptor: Any) -> Any:
    get = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    if get is None:  # pragma: no cover - older protobuf in a vendor image
        return message_factory.MessageFactory(_pool).GetPrototype(descriptor)
    return get(descriptor)


def message(name: str) -> Any:
    """The class of `inference.<name>` (nested names with dots: ModelInferRequest.InferInputTensor)."""
    return _message_class(_pool.FindMessageTypeByName(f"inference.{name}"))


_service = _pool.FindServiceByName(SERVICE)
# method name -> (request class, response class)
METHODS: dict[str, tuple[Any, Any]] = {
    method.name: (_message_class(method.input_type), _message_class(method.output_type))
    for method in _service.methods
}


def generic_handler(handlers: Mapping[str, Callable[..., Any]]) -> grpc.GenericRpcHandler:
    """The service's unary methods, served by `handlers[name](request, context)`."""
    unknown = set(handlers) - set(METHODS)
    if unknown:
        raise ValueError(f"{SERVICE} has no method(s) {sorted(unknown)}")
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            name: grpc.unary_unary_rpc_method_handler(
                handler,
                request_deserializer=METHODS[name][0].FromString,
                response_serializer=METHODS[name][1].SerializeToString,
            )
            for name, handler in handlers.items()
        },
    )

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

__all__ = ["METHODS", "SERVICE", "MalformedRequest", "generic_handler", "message"]

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


class MalformedRequest:
    """What a request that does not parse becomes: grpc would answer INTERNAL for a
    deserializer that raises, and a client's broken bytes are its own mistake."""

    def __init__(self, type_name: str, reason: str) -> None:
        self.message = f"the request is not a valid inference.{type_name}: {reason}"


def _lenient(request_class: Any) -> Callable[[bytes], Any]:
    type_name = request_class.DESCRIPTOR.name

    def parse(data: bytes) -> Any:
        try:
            return request_class.FromString(data)
        except Exception as exc:  # DecodeError, or a RuntimeError from some protobuf builds
            return MalformedRequest(type_name, str(exc) or type(exc).__name__)

    return parse


def _refusing_malformed(handler: Callable[..., Any]) -> Callable[..., Any]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, MalformedRequest):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        return await handler(request, context)

    return handle


def generic_handler(handlers: Mapping[str, Callable[..., Any]]) -> grpc.GenericRpcHandler:
    """The service's unary methods, served by the coroutines `handlers[name](request, context)`;
    requests that do not parse get INVALID_ARGUMENT before reaching them."""
    unknown = set(handlers) - set(METHODS)
    if unknown:
        raise ValueError(f"{SERVICE} has no method(s) {sorted(unknown)}")
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            name: grpc.unary_unary_rpc_method_handler(
                _refusing_malformed(handler),
                request_deserializer=_lenient(METHODS[name][0]),
                response_serializer=METHODS[name][1].SerializeToString,
            )
            for name, handler in handlers.items()
        },
    )

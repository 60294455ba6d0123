"""Open Inference Protocol tensors over gRPC: ModelInferRequest -> arrays, arrays ->
ModelInferResponse. Pure, and written against the messages' fields only, so any generated
module of the protocol will do (tests use tritonclient's).

Tensors travel as `raw_input_contents` (what tritonclient sends) or as typed `contents`; the
answer uses the request's form (`raw_output_contents`, else typed contents).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tf2aif.image.artifact import TensorSpec
from tf2aif.image.server.errors import ApiError
from tf2aif.image.server.protocol import DATATYPES, RequestedOutput, _bytes_from_binary, numpy_dtype

__all__ = [
    "CONTENTS_FIELD",
    "decode_infer_request",
    "encode_infer_response",
    "requested_outputs",
]

# Typed contents field of each datatype; FP16 has none (raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def decode_infer_request(
    request: Any, *, max_bytes: int
) -> tuple[dict[str, np.ndarray], dict[str, str], bool]:
    """Arrays by input name, the datatypes the client declared, and whether it sent raw bytes.
    Shapes are checked against the values given (and against `max_bytes`) before allocating."""
    if not request.inputs:
        raise _bad("the request has no inputs")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise _bad(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "give one per input, in order, or none"
        )
    arrays: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for index, tensor in enumerate(request.inputs):
        name = tensor.name
        if name in arrays:
            raise _bad(f"input {name!r} is given twice")
        dtype = numpy_dtype(tensor.datatype)
        shape = _shape(name, tensor.shape, dtype, max_bytes)
        if raw:
            if tensor.HasField("contents"):
                raise _bad(f"input {name!r} has both contents and raw_input_contents")
            arrays[name] = _from_raw(name, raw[index], dtype, shape)
        else:
            arrays[name] = _from_contents(name, tensor, dtype, shape)
        datatypes[name] = tensor.datatype
    return arrays, datatypes, bool(raw)


def _shape(name: str, given: Sequence[int], dtype: np.dtype, max_bytes: int) -> tuple[int, ...]:
    dims = tuple(given)  # once: each read of a protobuf repeated field makes a new object
    if min(dims, default=0) < 0:
        raise _bad(f"input {name!r}: shape {list(dims)} has a negative dimension")
    size = math.prod(dims) * dtype.itemsize
    # a dimension past the limit is refused even beside a 0 (numpy cannot shape [0, 2**62, 2**62])
    if size > max_bytes or max(dims, default=0) > max_bytes:
        raise ApiError(
            413,
            f"input {name!r}: shape {list(dims)} of {dtype.name} is over the {max_bytes}-byte limit",
        )
    return dims


def _from_raw(name: str, chunk: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    count = math.prod(shape)
    if dtype == np.object_:
        return _bytes_from_binary(name, memoryview(chunk), count).reshape(shape)
    if len(chunk) != count * dtype.itemsize:
        raise _bad(
            f"input {name!r}: shape {list(shape)} of {dtype.name} needs "
            f"{count * dtype.itemsize} bytes, raw_input_contents has {len(chunk)}"
        )
    return np.frombuffer(chunk, dtype=dtype).reshape(shape)


def _from_contents(name: str, tensor: Any, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        raise _bad(f"input {name!r}: {tensor.datatype} values travel only in raw_input_contents")
    contents = tensor.contents
    stray = [f.name for f, _ in contents.ListFields() if f.name != field]
    if stray:
        raise _bad(f"input {name!r}: a {tensor.datatype} tensor takes {field}, not {stray[0]}")
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise _bad(
            f"input {name!r}: shape {list(shape)} needs {count} values, {field} has {len(values)}"
        )
    if dtype == np.object_:
        return np.array(list(values), dtype=np.object_).reshape(shape)
    wide = np.array(values, dtype=_WIDE[field])
    if dtype.kind in "iu" and wide.size and wide.dtype != dtype:
        info = np.iinfo(dtype)
        if wide.min() < info.min or wide.max() > info.max:
            raise _bad(
                f"input {name!r}: {tensor.datatype} values must lie in [{info.min}, {info.max}]"
            )
    return wide.astype(dtype, copy=False).reshape(shape)


_WIDE = {
    "bool_contents": np.bool_,
    "int_contents": np.int32,
    "int64_contents": np.int64,
    "uint_contents": np.uint32,
    "uint64_contents": np.uint64,
    "fp32_contents": np.float32,
    "fp64_contents": np.float64,
}


def requested_outputs(request: Any) -> tuple[RequestedOutput, ...]:
    return tuple(RequestedOutput(name=o.name, binary=True) for o in request.outputs)


def encode_infer_response(
    response_type: Any,
    *,
    model_name: str,
    model_version: str,
    request_id: str,
    wanted: Sequence[RequestedOutput],
    outputs: Mapping[str, np.ndarray],
    specs: Sequence[TensorSpec],
    raw: bool,
) -> Any:
    names = [o.name for o in wanted] or [spec.name for spec in specs]
    datatypes = {spec.name: spec.datatype for spec in specs}
    # typed contents only when the client sent them and every output has a typed field
    raw = raw or any(CONTENTS_FIELD.get(datatypes[n]) is None for n in names)
    response = response_type(model_name=model_name, model_version=model_version, id=request_id)
    for name in names:
        datatype = datatypes[name]
        # np.asarray, not np.ascontiguousarray: that one makes a 0-d output 1-d ([1])
        array = np.asarray(outputs[name], dtype=DATATYPES[datatype], order="C")
        tensor = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        if raw:
            response.raw_output_contents.append(_raw_bytes(array))
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(_as_bytes(x) for x in array.reshape(-1))
        else:
            getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(array.reshape(-1).tolist())
    return response


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _raw_bytes(array: np.ndarray) -> bytes:
    if array.dtype != np.object_:
        return array.tobytes()
    items = [_as_bytes(x) for x in array.reshape(-1)]
    return b"".join(struct.pack("<I", len(x)) + x for x in items)

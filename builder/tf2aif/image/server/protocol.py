"""Open Inference Protocol (KServe v2) request parsing and response encoding, with the binary
tensor data extension (Triton's `Inference-Header-Content-Length`). Pure: bytes in, arrays out.

A request body is a JSON header, optionally followed by raw tensor bytes: each input whose
`parameters.binary_data_size` is set takes that many bytes, in input order. Responses do the same
for outputs asked for in binary (`parameters.binary_data` per output, or the request-level
`binary_data_output`).

One module: the JSON and binary forms of a request share every validation (shape, datatype,
NaN/Inf policy, located messages); the fast and the reference decoders stay beside their checks.
"""

from __future__ import annotations

import array as pyarray
import json
import math
import reprlib
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

try:  # orjson parses and writes JSON several times faster; the standard library is the fallback
    import orjson
except ImportError:  # pragma: no cover - the serve extra installs it
    orjson = None
try:  # simdjson reads float `data` arrays straight into a buffer (see _loads_with_float_data)
    import simdjson
except ImportError:  # pragma: no cover - the serve extra installs it
    simdjson = None

from tf2aif.errors import did_you_mean
from tf2aif.image.artifact import TensorSpec
from tf2aif.image.server.errors import ApiError

__all__ = [
    "DATATYPES",
    "InferRequest",
    "RequestedOutput",
    "check_inputs",
    "check_outputs",
    "dumps",
    "encode_infer_response",
    "json_safe",
    "numpy_dtype",
    "parse_infer_request",
]

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}


@dataclass(frozen=True, kw_only=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True, kw_only=True)
class InferRequest:
    id: str | None
    inputs: Mapping[str, np.ndarray]
    outputs: tuple[RequestedOutput, ...]  # empty: every output, in the binary_output mode
    binary_output: bool


def numpy_dtype(datatype: str) -> np.dtype:
    try:
        return DATATYPES[datatype]
    except KeyError:
        known = ", ".join(DATATYPES)
        raise ApiError(
            400, f"unknown datatype {datatype!r}{did_you_mean(datatype, DATATYPES)}; known: {known}"
        ) from None


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def parse_infer_request(
    body: bytes, header_length: int | None = None, *, fast: bool = True
) -> InferRequest:
    """Decode an inference request body (JSON, or JSON header + binary tensors). `fast` reads
    float `data` arrays without Python objects where it can; the answer is the same."""
    header, tail = _split_body(body, header_length)
    simd = fast and len(header) > SIMDJSON_MIN_BYTES
    document = (_loads_with_float_data(header) if simd else None) or _loads(header)
    if not isinstance(document, dict):
        raise _bad("request body must be a JSON object with an 'inputs' list")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise _bad("request needs a non-empty 'inputs' list")
    parameters = _parameters(document, "request")
    if header_length is None:
        _refuse_binary_sizes_without_extension(raw_inputs)
    offset = 0
    inputs: dict[str, np.ndarray] = {}
    for index, raw in enumerate(raw_inputs):
        name, array, used = _decode_input(raw, index, tail, offset, fast)
        if name in inputs:
            raise _bad(f"input {name!r} is given twice")
        inputs[name] = array
        offset += used
    if offset != len(tail):
        raise _bad(
            f"binary data is {len(tail)} bytes but the inputs' binary_data_size add up to {offset}"
        )
    if b"true" in header or b"false" in header:  # JSON booleans are rare: only then look for them
        _refuse_booleans_among_numbers(raw_inputs)
    binary_output = _flag(parameters, "binary_data_output", "request", default=False)
    request_id = document.get("id")
    if "id" in document and not isinstance(request_id, str):
        raise _bad(f"'id' must be a string, got {_brief(request_id)}")
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=_requested_outputs(document.get("outputs", []), binary_output),
        binary_output=binary_output,
    )


def _refuse_binary_sizes_without_extension(raw_inputs: list[Any]) -> None:
    for raw in raw_inputs:
        parameters = raw.get("parameters") if isinstance(raw, dict) else None
        if isinstance(parameters, dict) and "binary_data_size" in parameters:
            raise _bad(
                "binary_data_size belongs to the binary tensor extension: send the JSON header's "
                f"length in {HEADER_LENGTH_NAME} and the tensor bytes after it"
            )


def _refuse_booleans_among_numbers(raw_inputs: list[dict[str, Any]]) -> None:
    """numpy reads [true, 2.5] as [1.0, 2.5]: a JSON boolean in a numeric tensor is refused."""
    for raw in raw_inputs:
        numeric = raw["datatype"] not in ("BOOL", "BYTES") and isinstance(raw.get("data"), list)
        if numeric and any(type(value) is bool for value in _flatten(raw["data"])):
            raise _bad(f"input {raw['name']!r}: 'data' mixes true/false with numbers")


def _loads(text: bytes) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # NaN literals, integers past 64 bits, or broken JSON: the standard library
            # accepts the first two (and checks them later) and words the error for the last
    try:
        return json.loads(text)
    except RecursionError:
        raise _bad(
            f"request body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except ValueError as exc:  # bad JSON, bad UTF-8, or an integer past Python's digit limit
        reason = str(exc)
        if "integer string conversion" in reason:
            reason = "an integer has too many digits"
        raise _bad(f"request body is not valid JSON: {reason}") from None


HEADER_LENGTH_NAME = "Inference-Header-Content-Length"
# orjson's nesting limit; the standard library stops near the interpreter's recursion limit
MAX_JSON_DEPTH = 1024
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxlist, _BRIEF.maxdict, _BRIEF.maxstring, _BRIEF.maxlong = 3, 8, 4, 60, 40


def _brief(value: Any) -> str:
    """A client's value, shortened for an error message (it may be huge or deeply nested)."""
    return _BRIEF.repr(value)


def _flag(parameters: Mapping[str, Any], key: str, where: str, *, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise _bad(f"{where} parameters.{key} must be true or false, got {_brief(value)}")
    return value


def dumps(document: Any) -> bytes:
    """Compact JSON; numpy arrays are written as (nested) lists. Callers hand over no NaN/Inf
    (see _listed_with_words): orjson would write null, the standard library a bare NaN."""
    if orjson is not None:
        try:
            return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:
            pass  # a dtype orjson does not write (float16, non-contiguous): the slow path
    return json.dumps(document, separators=(",", ":"), default=_listed).encode()


# proto3's JSON mapping writes non-finite floats as these strings, and so do tf2aif's answers;
# they are read back as the values (and then refused like NaN literals, unless allowed).
_NONFINITE_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _word(value: float) -> str:
    """The proto3 JSON word of a non-finite float."""
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def json_safe(value: Any) -> Any:
    """A processing plug-in's answer as plain JSON values: numpy arrays and scalars as Python
    ones, NaN/Inf as their proto3 JSON words; other types are left for json.dumps to refuse."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return _word(value)
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def _listed(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _split_body(body: bytes, header_length: int | None) -> tuple[bytes, memoryview]:
    """The JSON header and a view of the tensor bytes (slicing bytes would copy them)."""
    if header_length is None:
        return body, memoryview(b"")
    if header_length < 0 or header_length > len(body):
        raise _bad(
            f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes"
        )
    return body[:header_length], memoryview(body)[header_length:]


def _parameters(document: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    parameters = document.get("parameters", {})
    if not isinstance(parameters, dict):
        raise _bad(f"{where} 'parameters' must be a JSON object")
    return parameters


def _decode_input(
    raw: Any, index: int, tail: memoryview, offset: int, fast: bool = True
) -> tuple[str, np.ndarray, int]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise _bad(f"inputs[{index}] must be an object with a string 'name'")
    name = raw["name"]
    shape = _shape(raw.get("shape"), name)
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise _bad(f"input {name!r}: 'datatype' must be a string such as \"FP32\"")
    dtype = numpy_dtype(datatype)
    input_parameters = _parameters(raw, f"input {name!r}")
    if "binary_data_size" in input_parameters:  # null too: it is not the JSON form either
        size = input_parameters["binary_data_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _bad(f"input {name!r}: binary_data_size must be a non-negative integer")
        if offset + size > len(tail):
            raise _bad(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({len(tail) - offset} bytes left)"
            )
        return name, _from_binary(name, tail[offset : offset + size], dtype, shape), size
    if "data" not in raw:
        raise _bad(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
    return name, _from_json(name, raw["data"], dtype, shape, fast=fast), 0


def _shape(raw: Any, name: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw
    ):
        raise _bad(
            f"input {name!r}: 'shape' must be a list of non-negative integers, got {_brief(raw)}"
        )
    if not _fits_numpy(raw):  # [0, 2**62, 2**62] holds nothing, yet numpy cannot shape it
        raise _bad(f"input {name!r}: shape {_brief(raw)} is larger than any tensor can be")
    return tuple(raw)


_MAX_ELEMENTS = 2**63 // 16  # numpy's bound on size x itemsize, for the widest datatype


def _fits_numpy(dims: list[int]) -> bool:
    size = 1
    for dim in dims:  # stops early: a shape of many huge integers costs no big products
        size *= dim or 1
        if size >= _MAX_ELEMENTS:
            return False
    return True


def _from_binary(
    name: str, chunk: memoryview, dtype: np.dtype, shape: tuple[int, ...]
) -> np.ndarray:
    count = math.prod(shape)
    if dtype == np.object_:
        return _bytes_from_binary(name, chunk, count).reshape(shape)
    if len(chunk) != count * dtype.itemsize:
        raise _bad(
            f"input {name!r}: shape {list(shape)} of {dtype.name} needs "
            f"{count * dtype.itemsize} bytes, binary_data_size says {len(chunk)}"
        )
    return np.frombuffer(chunk, dtype=dtype).reshape(shape)


def _bytes_from_binary(name: str, chunk: memoryview, count: int) -> np.ndarray:
    items, position = [], 0
    while position < len(chunk):
        if position + 4 > len(chunk):
            raise _bad(f"input {name!r}: truncated BYTES length prefix")
        (length,) = struct.unpack_from("<I", chunk, position)
        position += 4
        if position + length > len(chunk):
            raise _bad(f"input {name!r}: BYTES element runs past its binary data")
        items.append(bytes(chunk[position : position + length]))
        position += length
    if len(items) != count:
        raise _bad(f"input {name!r}: shape needs {count} BYTES elements, got {len(items)}")
    return np.array(items, dtype=np.object_)


def _from_json(
    name: str, data: Any, dtype: np.dtype, shape: tuple[int, ...], *, fast: bool = True
) -> np.ndarray:
    """A JSON `data` list (or the _FloatData simdjson made of it) as an array of `dtype` and
    `shape`. `fast` takes flat float lists through `_flat_floats`; the answer is the same."""
    if isinstance(data, _FloatData):  # made for FP16/FP32/FP64 inputs only
        array = data.values.astype(dtype, copy=False)
    elif not isinstance(data, list):
        raise _bad(f"input {name!r}: 'data' must be a list")
    else:
        array = _flat_floats(data, dtype) if fast else None
    if array is None:
        try:
            if dtype == np.object_:
                array = np.array([_as_bytes(name, x) for x in _flatten(data)], dtype=np.object_)
            else:
                array = np.array(data)
                if dtype.kind == "f" and array.dtype.kind in "UO":
                    array = np.array(_words_as_floats(data))
                array = _numbers(array, dtype)
        except (ValueError, TypeError, OverflowError) as exc:
            raise _bad(f"input {name!r}: 'data' does not hold {dtype.name} values: {exc}") from None
        except RecursionError:
            raise _bad(f"input {name!r}: 'data' is nested too deeply") from None
    count = math.prod(shape)
    if array.size != count:
        raise _bad(
            f"input {name!r}: shape {list(shape)} needs {count} values, 'data' has {array.size}"
        )
    if array.ndim > 1 and array.shape != shape:
        raise _bad(
            f"input {name!r}: 'data' is nested as {list(array.shape)}; send it flat or nested "
            f"like the shape {list(shape)}"
        )
    return array.reshape(shape)


# ---- fast paths: float `data` arrays (the bulk of JSON tensor traffic) -----------------------
# orjson makes a Python float per value (23-35 ms for a 224x224x3 image, freeing them a few ms
# more). simdjson parses the same text and hands a flat numeric array over as a float64 buffer
# (3.5 ms). The document is rebuilt from simdjson as plain Python values, except that the `data`
# array of an input whose datatype is FP16/FP32/FP64 becomes a _FloatData when it is flat, all
# numbers, and below 2**53 in magnitude (integers past that would round twice). Anything simdjson
# refuses (NaN literals, integers past 64 bits, broken JSON) goes to _loads, which reports it.

_FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})
# Below this, orjson is quicker (a digits request: 8 us against 15 us through simdjson).
SIMDJSON_MIN_BYTES = 16 * 1024
_EXACT_INT_LIMIT = 2.0**53
_parsers = threading.local()  # a simdjson.Parser serves one thread, one document at a time


class _FloatData:
    __slots__ = ("values",)

    def __init__(self, values: np.ndarray) -> None:
        self.values = values


def _loads_with_float_data(text: bytes) -> Any:
    """The parsed document with float `data` arrays as _FloatData; None where simdjson cannot
    parse it or the document is not an object (the caller then uses _loads)."""
    if simdjson is None:
        return None
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser()
    try:
        parsed = parser.parse(text)
    except (ValueError, TypeError, RuntimeError, UnicodeDecodeError):  # simdjson's error kinds
        return None
    if not isinstance(parsed, simdjson.Object):
        return None
    try:
        document = {}
        for key, value in _members(parsed):
            if key == "inputs" and isinstance(value, simdjson.Array):
                document[key] = [_input_document(item) for item in value]
            else:
                document[key] = _plain(value)
    except (_RepeatedKey, KeyError):
        # KeyError: simdjson lists a key it cannot look up (one holding an escaped NUL, "\u0000")
        return None
    # as_buffer flattens nested arrays ([1, [2]] too, which the reference refuses as ragged):
    # a nested `data` array shows as a "[" the document does not account for, and so does a
    # "[" inside a string; either way the reference decides
    if text.count(b"[") != _arrays_in(document):
        return None
    return document


def _arrays_in(value: Any) -> int:
    if isinstance(value, _FloatData):
        return 1
    if isinstance(value, list):
        return 1 + sum(_arrays_in(x) for x in value if isinstance(x, (list, dict)))
    if isinstance(value, dict):
        return sum(_arrays_in(x) for x in value.values() if isinstance(x, (list, dict, _FloatData)))
    return 0


class _RepeatedKey(Exception):
    pass


def _members(obj: Any) -> list[tuple[str, Any]]:
    """An object's members, values still simdjson proxies (items() would convert them all).
    A repeated key goes to orjson, which keeps the last."""
    keys = list(obj.keys())
    if len(set(keys)) != len(keys):
        raise _RepeatedKey
    return [(key, obj[key]) for key in keys]


def _plain(value: Any) -> Any:
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value


def _input_document(item: Any) -> Any:
    if not isinstance(item, simdjson.Object):
        return _plain(item)
    members = _members(item)
    floats = any(key == "datatype" and value in _FLOAT_DATATYPES for key, value in members)
    entry = {}
    for key, value in members:
        if key == "data" and floats and isinstance(value, simdjson.Array):
            entry[key] = _float_data(value) or value.as_list()
        else:
            entry[key] = _plain(value)
    return entry


def _float_data(array: Any) -> _FloatData | None:
    if len(array) == 0:
        return None
    try:
        values = np.frombuffer(array.as_buffer(of_type="d"), dtype=np.float64)
    except (TypeError, ValueError):  # a bool, string, null or object among the values
        return None
    if values.size != len(array) or np.abs(values).max() >= _EXACT_INT_LIMIT:
        return None
    return _FloatData(values)


# A flat list orjson already made: np.array(list) first discovers the nesting and a common
# type value by value; array.array("d") copies the floats in one C loop and numpy views it.
# It gives the reference answer whenever the list is flat and holds numbers; anything else falls
# back: lists, strings, None make it raise (np.fromiter would parse strings), an all-bool list is
# a type error in the reference, and integers past 2**53 would round twice.


def _flat_floats(data: list[Any], dtype: np.dtype) -> np.ndarray | None:
    if dtype.kind != "f" or not data or type(data[0]) is list:
        return None
    try:
        values = np.frombuffer(pyarray.array("d", data), dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if all(type(v) is bool for v in data):  # stops at the first number: cheap for real data
        return None
    with np.errstate(invalid="ignore"):
        if np.abs(values).max() >= _EXACT_INT_LIMIT:
            return None
    return values.astype(dtype, copy=False)


# JSON values of these numpy kinds may fill a tensor of the key's kind (never float -> int).
_JSON_KINDS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}


def _numbers(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if array.dtype == np.object_ and dtype.kind == "f":
        array = _past_64_bits(array)
    if array.size and array.dtype.kind not in _JSON_KINDS[dtype.kind]:
        raise ValueError(f"found {array.dtype.name} values")
    if dtype.kind in "iu" and array.size:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise OverflowError(f"values outside [{info.min}, {info.max}]")
    with np.errstate(over="ignore"):  # past the float type's range: Inf, refused by check_inputs
        return array.astype(dtype, copy=False)


def _words_as_floats(data: list[Any]) -> list[Any]:
    return [
        _words_as_floats(x)
        if type(x) is list
        else _NONFINITE_WORDS.get(x, x)
        if type(x) is str
        else x
        for x in data
    ]


def _past_64_bits(array: np.ndarray) -> np.ndarray:
    """A JSON integer past 64 bits is still a number: as a float (numpy holds it as an object)."""
    if not all(type(value) in (int, float) for value in array.flat):
        return array  # None, strings, objects: refused by the caller
    return array.astype(np.float64)  # OverflowError past float64's range


def _flatten(data: Iterable[Any]) -> Iterable[Any]:
    for item in data:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def _as_bytes(name: str, value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    raise _bad(f"input {name!r}: BYTES data must be strings")


def _requested_outputs(raw: Any, default_binary: bool) -> tuple[RequestedOutput, ...]:
    if not isinstance(raw, list):
        raise _bad("'outputs' must be a list of {\"name\": ...} objects")
    requested = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _bad(f"outputs[{index}] must be an object with a string 'name'")
        parameters = _parameters(item, f"output {item['name']!r}")
        if "classification" in parameters:
            raise _bad("the classification extension is not supported; ask for the raw output")
        binary = _flag(
            parameters, "binary_data", f"output {item['name']!r}", default=default_binary
        )
        requested.append(RequestedOutput(name=item["name"], binary=binary))
    return tuple(requested)


def check_inputs(
    inputs: Mapping[str, np.ndarray],
    specs: Sequence[TensorSpec],
    *,
    datatypes: Mapping[str, str] | None = None,
    allow_nonfinite: bool = False,
) -> None:
    """Names, datatypes, shapes and values against the model's inputs; raises ApiError (400)."""
    expected = {spec.name: spec for spec in specs}
    unknown = [name for name in inputs if name not in expected]
    if unknown:
        name = unknown[0]
        raise _bad(
            f"unknown input {name!r}{did_you_mean(name, expected)}; "
            f"the model's inputs are: {', '.join(expected)}"
        )
    missing = [name for name in expected if name not in inputs]
    if missing:
        raise _bad(f"missing input(s): {', '.join(missing)}")
    for spec in specs:
        array = inputs[spec.name]
        given = (datatypes or {}).get(spec.name) or _oip_name(array.dtype)
        if given != spec.datatype:
            raise _bad(
                f"input {spec.name!r}: datatype {given} given, the model takes {spec.datatype}"
            )
        _check_shape(spec, array.shape)
        if not allow_nonfinite and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise _bad(f"input {spec.name!r} holds NaN or Inf values")
    batch_sizes = {
        inputs[spec.name].shape[0] for spec in specs if spec.shape and spec.shape[0] == -1
    }
    if len(batch_sizes) > 1:
        raise _bad(f"inputs disagree on the batch size (dim 0): {sorted(batch_sizes)}")


_OIP_NAMES = {dtype: name for name, dtype in DATATYPES.items()}


def _oip_name(dtype: np.dtype) -> str:
    return _OIP_NAMES.get(dtype) or str(dtype)


def _check_shape(spec: TensorSpec, shape: tuple[int, ...]) -> None:
    fits = len(shape) == len(spec.shape) and all(
        want in (-1, got) for want, got in zip(spec.shape, shape, strict=True)
    )
    if not fits:
        wanted = ["-1" if d == -1 else str(d) for d in spec.shape]
        raise _bad(
            f"input {spec.name!r}: shape {list(shape)} does not fit the model's "
            f"[{', '.join(wanted)}] (-1: any size)"
        )


def check_outputs(requested: Sequence[RequestedOutput], specs: Sequence[TensorSpec]) -> None:
    names = [spec.name for spec in specs]
    for output in requested:
        if output.name not in names:
            raise _bad(
                f"unknown output {output.name!r}{did_you_mean(output.name, names)}; "
                f"the model's outputs are: {', '.join(names)}"
            )


def encode_infer_response(
    *,
    model_name: str,
    model_version: str,
    request: InferRequest,
    outputs: Mapping[str, np.ndarray],
    specs: Sequence[TensorSpec],
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary data follows it."""
    wanted = request.outputs or tuple(
        RequestedOutput(name=spec.name, binary=request.binary_output) for spec in specs
    )
    datatypes = {spec.name: spec.datatype for spec in specs}
    entries, chunks = [], []
    for output in wanted:
        entry, chunk = _encode_output(output, outputs[output.name], datatypes[output.name])
        entries.append(entry)
        if chunk is not None:
            chunks.append(chunk)
    document: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": entries,
    }
    if request.id is not None:
        document["id"] = request.id
    header = dumps(document)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _encode_output(
    output: RequestedOutput, array: np.ndarray, datatype: str
) -> tuple[dict[str, Any], bytes | None]:
    entry: dict[str, Any] = {"name": output.name, "datatype": datatype, "shape": list(array.shape)}
    dtype = DATATYPES[datatype]
    if dtype == np.object_:
        items = [x if isinstance(x, bytes) else str(x).encode() for x in array.reshape(-1)]
        if output.binary:
            chunk = b"".join(struct.pack("<I", len(x)) + x for x in items)
            entry["parameters"] = {"binary_data_size": len(chunk)}
            return entry, chunk
        entry["data"] = [x.decode(errors="replace") for x in items]
        return entry, None
    array = np.ascontiguousarray(array, dtype=dtype)
    if output.binary:
        chunk = array.tobytes()
        entry["parameters"] = {"binary_data_size": len(chunk)}
        return entry, chunk
    flat = array.reshape(-1)
    finite = dtype.kind != "f" or bool(np.isfinite(flat).all())
    entry["data"] = flat if finite and orjson is not None else _listed_with_words(flat, finite)
    return entry, None


def _listed_with_words(flat: np.ndarray, finite: bool) -> list[Any]:
    """The values as a list valid JSON can hold: NaN/Inf become "NaN", "Infinity", "-Infinity"
    as in proto3's JSON mapping (bare NaN is not JSON; null would lose which one it was)."""
    values = flat.tolist()
    if not finite:
        for index in np.flatnonzero(~np.isfinite(flat)).tolist():
            values[index] = _word(values[index])
    return values

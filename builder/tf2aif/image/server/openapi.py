"""The OpenAPI 3.1 document of the server and a self-contained /docs page (no CDN needed).

The document is the contract, written for the model being served: a request it calls valid is
answered 2xx, and every request the server refuses breaks a rule it states. So the schemas name
the model's inputs, outputs and datatypes, bound the values a tensor of that datatype can hold,
and tie each input's `shape` to the number of values in `data` (one alternative per batch size
up to the advertised `max_batch_size`: JSON Schema cannot multiply). What JSON Schema cannot say
at all (inputs agreeing on the batch size; the binary tensor extension, whose body layout
depends on a header) is said in descriptions. /predict's body comes from the processing module:
its REQUEST_BODY (an OpenAPI requestBody) and RESPONSE_SCHEMA when it declares them.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tf2aif import __version__
from tf2aif.image.server.protocol import DATATYPES

__all__ = ["docs_html", "document"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_HEADER_LENGTH = "Inference-Header-Content-Length"
# JSON values past these become Inf in the tensor, which is refused like NaN
_FLOAT_MAX = {"FP16": 65504.0, "FP32": float(np.finfo(np.float32).max), "FP64": 1.7976931348623157e308}  # fmt: skip
# shapes with more values than this are described without tying data to shape (any batch size)
_TIED_VALUES_MAX = 1 << 16

_TENSOR_OUT = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"},
        "data": {"type": "array"},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer"}}},
    },
}
_STATIC_SCHEMAS = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "InferenceResponse": {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _TENSOR_OUT},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _TENSOR_OUT},
            "outputs": {"type": "array", "items": _TENSOR_OUT},
            "parameters": {"type": "object"},
        },
    },
}


# ---- the model's tensors ----------------------------------------------------------------------


def value_schema(datatype: str) -> dict[str, Any]:
    """One JSON value of a tensor of `datatype`, as the server accepts it."""
    if datatype in _FLOAT_MAX:
        limit = _FLOAT_MAX[datatype]
        return {"type": "number", "minimum": -limit, "maximum": limit}
    if datatype == "BOOL":
        return {"type": "boolean"}
    if datatype == "BYTES":
        return {"type": "string"}
    info = np.iinfo(DATATYPES[datatype])
    return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}


def _nested(dims: Sequence[int], values: dict[str, Any]) -> dict[str, Any]:
    """`data` nested like the shape: arrays of arrays, `dims` long at each level."""
    schema = values
    for dim in reversed(dims):
        schema = {"type": "array", "minItems": dim, "maxItems": dim, "items": schema}
    return schema


def _shape_and_data(shape: Sequence[int], values: dict[str, Any]) -> dict[str, Any]:
    """`shape` equal to `shape`, and `data` holding exactly its values, flat or nested."""
    count = math.prod(shape)
    flat = {"type": "array", "minItems": count, "maxItems": count, "items": values}
    data = flat if len(shape) <= 1 else {"anyOf": [flat, _nested(shape, values)]}
    return {"properties": {"shape": {"const": list(shape)}, "data": data}}


def _input_schema(spec: Any, batch_limit: int) -> dict[str, Any]:
    values = value_schema(spec.datatype)
    dims = list(spec.shape)
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"const": spec.name},
            "datatype": {"const": spec.datatype},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "data": {"type": "array", "description": "row-major values, flat or nested"},
            "parameters": {
                "type": "object",
                "description": "binary_data_size belongs to the binary tensor extension only",
                "not": {"required": ["binary_data_size"]},
            },
        },
    }
    batched = bool(dims) and dims[0] == -1 and -1 not in dims[1:]
    row = math.prod(dims[1:])
    if -1 not in dims:
        schema["allOf"] = [_shape_and_data(dims, values)]
    elif batched and row * batch_limit <= _TIED_VALUES_MAX:
        schema["anyOf"] = [
            _shape_and_data([rows, *dims[1:]], values) for rows in range(batch_limit + 1)
        ]
    else:  # other dynamic dims (or huge rows): the rank and the fixed dims, not the count
        schema["properties"]["shape"] |= {
            "minItems": len(dims),
            "maxItems": len(dims),
            "prefixItems": [{"const": d} if d != -1 else {"type": "integer"} for d in dims],
        }
    return schema


def _inputs_schema(specs: Sequence[Any], batch_limit: int) -> dict[str, Any]:
    """Every model input exactly once, in any order."""
    items = [_input_schema(spec, batch_limit) for spec in specs]
    schema: dict[str, Any] = {
        "type": "array",
        "minItems": len(specs),
        "maxItems": len(specs),
        "items": items[0] if len(items) == 1 else {"anyOf": items},
    }
    if len(specs) > 1:
        schema["allOf"] = [
            {"contains": {"properties": {"name": {"const": spec.name}}}} for spec in specs
        ]
    return schema


def _infer_request(model: Any) -> dict[str, Any]:
    names = [spec.name for spec in model.info.outputs]
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string", "description": "echoed in the response"},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
            "inputs": _inputs_schema(model.info.inputs, model.batch_limit),
            "outputs": {
                "type": "array",
                "description": "outputs to return (default: all)",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"enum": names},
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data": {"type": "boolean"}},
                            "not": {"required": ["classification"]},
                        },
                    },
                },
            },
        },
    }


# ---- operations -------------------------------------------------------------------------------


def _json_response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"schema": schema or {"type": "object"}}
    return {"description": description, "content": {"application/json": body}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "malformed request: bad JSON, unknown/missing input, wrong datatype or shape, NaN/Inf",
        404: "unknown model or version (or no processing module, for /predict)",
        405: "method not allowed on this path",
        413: "body over --max-body-bytes (or, for /predict, an image over --max-image-pixels)",
        415: "content type or content encoding not accepted",
        500: "the runtime or a processing hook failed",
        503: "model not ready, queue full (Retry-After) or shutting down",
    }
    return {str(code): _json_response(text[code], _ERROR) for code in codes}


_BINARY_EXTENSION = (
    "Binary tensor extension (Triton's): send Content-Type application/octet-stream with the "
    f"header {_HEADER_LENGTH}: N; the first N bytes of the body are this JSON request, and each "
    "input with parameters.binary_data_size takes that many raw bytes after it, in input order. "
    "Inputs must agree on the batch size (dim 0)."
)


def _infer_operation(model: Any) -> dict[str, Any]:
    response_header = {
        _HEADER_LENGTH: {
            "description": "length of the JSON header when binary outputs follow it",
            "schema": {"type": "integer", "minimum": 0},
        }
    }
    ok = {
        "description": "outputs (binary ones after a JSON header when asked for)",
        "headers": response_header,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceResponse"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    return {
        "summary": "Inference on tensors (JSON, or JSON header + binary tensors)",
        "description": _BINARY_EXTENSION,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}
            },
        },
        "responses": {"200": ok, **_errors(400, 404, 413, 415, 500, 503)},
    }


def _predict_operation(model: Any) -> dict[str, Any]:
    processing = model.processing
    body = getattr(processing, "REQUEST_BODY", None) or {
        "required": True,
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    }
    result = getattr(processing, "RESPONSE_SCHEMA", None) or {}
    return {
        "summary": "Raw payload through the artifact's preprocess -> model -> postprocess",
        "requestBody": body,
        "responses": {
            "200": _json_response("postprocess() result", result),
            **_errors(400, 404, 413, 500, 503),
        },
    }


def _model_paths(model: Any) -> dict[str, Any]:
    name_param = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [model.name]},
    }
    version_param = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [model.version]},
    }
    operations = {
        "": ("get", {"summary": "Model metadata (inputs, outputs, runtime)", "responses": {"200": _json_response("metadata", {"$ref": "#/components/schemas/ModelMetadata"}), **_errors(404)}}),
        "/ready": ("get", {"summary": "Model readiness: 200 once loaded and warmed up, else 503", "responses": {"200": _json_response("ready"), **_errors(404, 503)}}),
        "/config": ("get", {"summary": "Triton-style model configuration (batching limits)", "responses": {"200": _json_response("config"), **_errors(404)}}),
        "/infer": ("post", _infer_operation(model)),
        "/predict": ("post", _predict_operation(model)),
    }  # fmt: skip
    paths: dict[str, Any] = {}
    for suffix, (method, operation) in operations.items():
        for prefix, params in (
            ("/v2/models/{name}", [name_param]),
            ("/v2/models/{name}/versions/{version}", [name_param, version_param]),
        ):
            paths[prefix + suffix] = {method: {**operation, "parameters": params}}
    return paths


def document(model: Any) -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": {"summary": "Liveness: 200 while the process serves HTTP", "responses": {"200": _json_response("live")}}},
        "/v2/health/ready": {"get": {"summary": "Readiness: 200 once the model is loaded and warmed up", "responses": {"200": _json_response("ready"), "503": _json_response("not ready")}}},
        "/v2": {"get": {"summary": "Server metadata (name, version, extensions)", "responses": {"200": _json_response("metadata")}}},
        "/v2/repository/index": {"post": {"summary": "The one served model and its state", "responses": {"200": _json_response("index", {"type": "array"})}}},
        **_model_paths(model),
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json_response("OpenAPI 3.1")}}},
        "/docs": {"get": {"summary": "Human-readable API page", "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"tf2aif inference server: {model.name} ({model.info.runtime}, {model.info.precision})",
            "version": __version__,
            "description": "Open Inference Protocol (KServe v2) over HTTP, with the binary tensor data extension.",
        },
        "paths": paths,
        "components": {"schemas": {**_STATIC_SCHEMAS, "InferenceRequest": _infer_request(model)}},
    }  # fmt: skip


def docs_html(doc: dict[str, Any]) -> str:
    rows = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            codes = ", ".join(operation.get("responses", {}))
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(operation.get('summary', ''))}</td><td>{codes}</td></tr>"
            )
    schemas = html.escape(json.dumps(doc["components"]["schemas"], indent=2))
    title = html.escape(doc["info"]["title"])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}td,th{{padding:.3em .8em;text-align:left;
border-bottom:1px solid #ddd}}pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head>
<body><h1>{title}</h1><p>{html.escape(doc["info"]["description"])} Machine-readable:
<a href="/openapi.json">/openapi.json</a>. Errors are <code>{{"error": "..."}}</code>.</p>
<table><tr><th>method</th><th>path</th><th>what</th><th>status codes</th></tr>
{"".join(rows)}</table><h2>Schemas</h2><pre>{schemas}</pre></body></html>
"""

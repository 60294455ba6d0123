"""The OpenAPI 3.1 document of the server and a self-contained /docs page (no CDN needed)."""

from __future__ import annotations

import html
import json
from typing import Any

from tf2aif import __version__

__all__ = ["docs_html", "document"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_TENSOR_IN = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8",
                                                 "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]},
        "data": {"type": "array", "description": "row-major values, flat or nested"},
        "parameters": {
            "type": "object",
            "properties": {"binary_data_size": {"type": "integer", "description": "bytes of this tensor after the JSON header"}},
        },
    },
}  # fmt: skip
_TENSOR_OUT = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"},
        "data": {"type": "array"},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer"}}},
    },
}
_SCHEMAS = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
            "inputs": {"type": "array", "items": _TENSOR_IN},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data": {"type": "boolean"}},
                        },
                    },
                },
            },
        },
    },
    "InferenceResponse": {
        "type": "object",
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


def _json_response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"schema": schema or {"type": "object"}}
    return {"description": description, "content": {"application/json": body}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "malformed request: bad JSON, unknown/missing input, wrong datatype or shape, NaN/Inf",
        404: "unknown model or version (or no processing module, for /predict)",
        413: "body over --max-body-bytes",
        415: "content type or content encoding not accepted",
        500: "the runtime or a processing hook failed",
        503: "model not ready, queue full (Retry-After) or shutting down",
    }
    return {str(code): _json_response(text[code], _ERROR) for code in codes}


def _model_paths(model: Any) -> dict[str, Any]:
    name_param = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "example": model.name},
    }
    version_param = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "example": model.version},
    }
    operations = {
        "": ("get", "Model metadata (inputs, outputs, runtime)", _json_response("metadata", {"$ref": "#/components/schemas/ModelMetadata"}), (404,)),
        "/ready": ("get", "Model readiness: 200 once loaded and warmed up, else 503", _json_response("ready"), (404, 503)),
        "/config": ("get", "Triton-style model configuration (batching limits)", _json_response("config"), (404,)),
        "/infer": ("post", "Inference on tensors (JSON, or JSON header + binary tensors)", None, (400, 404, 413, 415, 500, 503)),
        "/predict": ("post", "Raw payload through the artifact's preprocess -> model -> postprocess", _json_response("postprocess() result"), (400, 404, 413, 500, 503)),
    }  # fmt: skip
    paths: dict[str, Any] = {}
    for suffix, (method, summary, ok, codes) in operations.items():
        for prefix, params in (
            ("/v2/models/{name}", [name_param]),
            ("/v2/models/{name}/versions/{version}", [name_param, version_param]),
        ):
            operation: dict[str, Any] = {"summary": summary, "parameters": params, "responses": {}}
            if suffix == "/infer":
                operation |= _infer_body()
                ok = _json_response("outputs", {"$ref": "#/components/schemas/InferenceResponse"})
            elif suffix == "/predict":
                operation["requestBody"] = {
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}
                }
            operation["responses"] = {"200": ok, **_errors(*codes)}
            paths[prefix + suffix] = {method: operation}
    return paths


def _infer_body() -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"},
                    "description": "binary tensor extension: the first Inference-Header-Content-Length bytes are the JSON request",
                },
            },
        },
    }  # fmt: skip


def document(model: Any) -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": {"summary": "Liveness: 200 while the process serves HTTP", "responses": {"200": _json_response("live")}}},
        "/v2/health/ready": {"get": {"summary": "Readiness: 200 once the model is loaded and warmed up", "responses": {"200": _json_response("ready"), "503": _json_response("not ready")}}},
        "/v2": {"get": {"summary": "Server metadata (name, version, extensions)", "responses": {"200": _json_response("metadata")}}},
        "/v2/repository/index": {"post": {"summary": "The one served model and its state", "responses": {"200": _json_response("index", {"type": "array"})}}},
        **_model_paths(model),
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json_response("OpenAPI 3.1")}}},
        "/docs": {"get": {"summary": "Human-readable API page", "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}},
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"tf2aif inference server: {model.name} ({model.info.runtime}, {model.info.precision})",
            "version": __version__,
            "description": "Open Inference Protocol (KServe v2) over HTTP, with the binary tensor data extension.",
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }


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

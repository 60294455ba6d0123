"""Request bodies for the Open Inference Protocol: random tensors from the model metadata, samples
from a plug-in function, or raw files for the predict endpoint. Bodies are encoded once, up front,
so the load loop only sends bytes."""

from __future__ import annotations

import itertools
import json
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tf2aif.errors import BenchError

__all__ = [
    "OIP_DTYPES",
    "Payload",
    "encode_infer",
    "file_payloads",
    "health_payload",
    "random_inputs",
    "sample_inputs",
]

OIP_DTYPES: Mapping[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
_NUMPY_TO_OIP = {np.dtype(v): k for k, v in OIP_DTYPES.items()}


@dataclass(frozen=True, kw_only=True)
class Payload:
    """One ready-to-send HTTP request (path relative to the server's base URL)."""

    method: str = "POST"
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    kind: str  # infer-json | infer-binary | predict | health


def health_payload() -> Payload:
    """The cheapest request an OIP server answers: used to measure the client's own ceiling."""
    return Payload(method="GET", path="/v2/health/ready", kind="health")


def random_inputs(
    metadata: Mapping[str, Any], *, batch: int = 1, seed: int = 0
) -> dict[str, np.ndarray]:
    """Tensors matching the model metadata's inputs; -1 dims become `batch` (first) or 1."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for spec in metadata.get("inputs", ()):
        shape = [batch if i == 0 and d < 0 else max(int(d), 1) for i, d in enumerate(spec["shape"])]
        tensors[spec["name"]] = _random_tensor(rng, spec["datatype"], shape)
    if not tensors:
        raise BenchError(f"model {metadata.get('name', '?')!r}: its metadata lists no inputs")
    return tensors


def _random_tensor(rng: np.random.Generator, datatype: str, shape: list[int]) -> np.ndarray:
    if datatype not in OIP_DTYPES:
        raise BenchError(
            f"cannot make random data for datatype {datatype!r}; use --samples or --files"
        )
    dtype = np.dtype(OIP_DTYPES[datatype])
    if dtype.kind == "f":
        return rng.random(shape, dtype=np.float32).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -128), min(info.max, 255) + 1, shape).astype(dtype)


def sample_inputs(samples: Iterable[Any], limit: int) -> list[dict[str, np.ndarray]]:
    """Inputs from a manifest sample function: dicts of arrays, or (inputs, label) pairs."""
    taken = []
    for item in itertools.islice(samples, limit):
        inputs = item[0] if isinstance(item, tuple) else item
        taken.append({name: np.asarray(value) for name, value in inputs.items()})
    if not taken:
        raise BenchError("the sample function yielded nothing")
    return taken


def encode_infer(model: str, inputs: Mapping[str, np.ndarray], *, binary: bool) -> Payload:
    """An OIP infer request; `binary` uses the binary tensor data extension for inputs and outputs."""
    path = f"/v2/models/{model}/infer"
    specs = []
    chunks = []
    for name, array in inputs.items():
        array = np.ascontiguousarray(array)
        spec: dict[str, Any] = {
            "name": name,
            "shape": list(array.shape),
            "datatype": _oip_datatype(array),
        }
        if binary:
            raw = array.tobytes()
            spec["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            spec["data"] = array.reshape(-1).tolist()
        specs.append(spec)
    if not binary:
        body = json.dumps({"inputs": specs}).encode()
        return Payload(
            path=path, body=body, headers=(("Content-Type", "application/json"),), kind="infer-json"
        )
    header = json.dumps({"inputs": specs, "parameters": {"binary_data_output": True}}).encode()
    headers = (
        ("Content-Type", "application/octet-stream"),
        ("Inference-Header-Content-Length", str(len(header))),
    )
    return Payload(path=path, body=header + b"".join(chunks), headers=headers, kind="infer-binary")


def _oip_datatype(array: np.ndarray) -> str:
    try:
        return _NUMPY_TO_OIP[array.dtype]
    except KeyError:
        raise BenchError(
            f"numpy dtype {array.dtype} has no Open Inference Protocol datatype"
        ) from None


def file_payloads(model: str, paths: Sequence[Path]) -> list[Payload]:
    """Raw files (images, JSON) for the predict endpoint, which runs the model's own processing."""
    payloads = []
    for path in paths:
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        payloads.append(
            Payload(
                path=f"/v2/models/{model}/predict",
                body=path.read_bytes(),
                headers=(("Content-Type", content_type),),
                kind="predict",
            )
        )
    if not payloads:
        raise BenchError("no input files given for the predict endpoint")
    return payloads

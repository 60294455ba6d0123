"""Helpers for hostile-request tests: resident memory of a process, valid requests, crafted images."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import httpx
import numpy as np

INFER = "/v2/models/digits/infer"
PREDICT = "/v2/models/digits/predict"
TIMEOUT = httpx.Timeout(20.0)  # a hang fails the test instead of stalling it


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def valid_request(rows: int = 1) -> dict:
    values = np.linspace(0, 1, rows * 64, dtype=np.float32)
    return {
        "inputs": [
            {"name": "image", "shape": [rows, 8, 8, 1], "datatype": "FP32", "data": values.tolist()}
        ]
    }


def binary_request(rows: int) -> tuple[bytes, dict[str, str]]:
    raw = np.zeros((rows, 8, 8, 1), np.float32).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [rows, 8, 8, 1],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "output_0", "parameters": {"binary_data": True}}],
        }
    ).encode()
    headers = {
        "content-type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return header + raw, headers


def assert_serves(client: httpx.Client) -> None:
    """The server still answers a valid request correctly."""
    response = client.post(INFER, json=valid_request())
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["shape"] == [1, 10]
    assert abs(sum(output["data"]) - 1.0) < 1e-4  # softmax


def assert_refused_with_reason(response: httpx.Response) -> None:
    """A 4xx whose JSON body says what is wrong."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert isinstance(error, str) and len(error) > 10, error


def png_claiming(width: int, height: int, *, mode: int = 0) -> bytes:
    """A tiny valid-looking PNG whose header claims width x height (a decompression bomb's
    header: decoding would need width * height bytes or more). mode: PNG colour type."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0)
    rows = zlib.compress(b"\0" * min(width + 1, 1 << 16), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def real_png(width: int, height: int, shade: int = 255) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), shade).save(buffer, format="PNG")
    return buffer.getvalue()

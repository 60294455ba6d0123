from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DIGEST = "sha256:" + "1" * 64


def image(target: str, variants: list[str], runtime: str, precision: str, **extra: Any) -> dict:
    arches = sorted(
        {"cpu": "amd64", "gpu": "amd64", "alveo": "amd64", "arm": "arm64", "agx": "arm64"}[
            v.split("/")[0]
        ]
        for v in variants
    )
    entry = {
        "target": target,
        "variants": variants,
        "runtime": runtime,
        "precision": precision,
        "platforms": [f"linux/{a}" for a in arches],
        "image": "127.0.0.1:5000/tf2aif/digits",
        "tags": [  # the content tag first, as the plan lists them
            f"127.0.0.1:5000/tf2aif/digits:{runtime}-{precision}-c0ffee",
            f"127.0.0.1:5000/tf2aif/digits:{runtime}-{precision}",
        ],
        "digest": DIGEST,
        "status": "success",
        "reason": "",
        "convert_target": f"convert-{runtime}-{precision}",
        "fidelity": {},
        "durations": {"convert": 1.0, "serve": 2.0},
        "base_images": {},
    }
    entry.update(extra)
    return entry


def five_platform_record() -> dict:
    """A record with every paper platform, one failed image and one image without a digest."""
    return {
        "version": 1,
        "manifest": "tf2aif.yaml",
        "name": "digits",
        "model_digest": "sha256:" + "a" * 64,
        "registry": "127.0.0.1:5000/tf2aif",
        "created": "2026-11-23T15:00:00Z",
        "tools": {"buildx": "0.13.1", "tf2aif": "0.1.0"},
        "images": [
            image(
                "serve-cpu-arm-tflite-fp32",
                ["cpu/tflite/fp32", "arm/tflite/fp32"],
                "tflite",
                "fp32",
            ),
            image("serve-cpu-tf-fp32", ["cpu/tf/fp32"], "tf", "fp32", digest=None),
            image("serve-gpu-tensorrt-fp16", ["gpu/tensorrt/fp16"], "tensorrt", "fp16"),
            image("serve-agx-tensorrt-int8", ["agx/tensorrt/int8"], "tensorrt", "int8"),
            image("serve-alveo-vitis-ai-int8", ["alveo/vitis-ai/int8"], "vitis-ai", "int8"),
            image(
                "serve-cpu-openvino-int8",
                ["cpu/openvino/int8"],
                "openvino",
                "int8",
                status="failed",
                reason="fidelity: top-1 agreement 0.91 < 0.98",
                digest=None,
            ),
        ],
    }


@pytest.fixture
def record_data() -> dict:
    return five_platform_record()


@pytest.fixture
def write_record(tmp_path: Path):
    def write(data: dict) -> Path:
        path = tmp_path / "tf2aif-record.json"
        path.write_text(json.dumps(data, sort_keys=True, indent=2))
        return path

    return write


@pytest.fixture
def record_path(write_record, record_data: dict) -> Path:
    return write_record(record_data)

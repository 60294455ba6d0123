"""bench against `tf2aif serve` on a real converted digits artifact (TFLite fp32)."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from tf2aif.bench.result import load_result
from tf2aif.cli import main

pytest.importorskip("tf2aif.server.app", reason="needs the tf2aif server")
pytestmark = pytest.mark.conversion

REPO = Path(__file__).resolve().parents[2]
QUICK = ["--warmup", "0.5", "--window", "0.5", "--max-duration", "2", "--quiet"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """The digits CNN, trained (about 8 s) and converted to TFLite fp32 by tf2aif's converter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf2aif.convert import ConvertSpec, run_conversion

    root = tmp_path_factory.mktemp("digits")
    sys.path.insert(0, str(REPO / "examples" / "digits"))
    try:
        import train
    finally:
        sys.path.remove(str(REPO / "examples" / "digits"))
    train.train(root / "models" / "digits")
    shutil.copytree(REPO / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    spec = ConvertSpec(name="digits", runtime="tflite", precision="fp32", backend="tflite",
                       model="models/digits", processing="app/processing.py", plugins_dir="app")  # fmt: skip
    run_conversion(spec, root=root, out=root / "artifact")
    return root / "artifact"


def digit_png(tmp_path: Path) -> Path:
    from PIL import Image

    from tf2aif.plugins import load_module

    data = load_module(REPO / "app" / "digits_data.py")
    image = data.load_digits_split()[2][0].reshape(8, 8)
    pixels = (255 * (1.0 - image)).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").resize((64, 64), Image.NEAREST).save(buffer, format="PNG")
    path = tmp_path / "digit.png"
    path.write_bytes(buffer.getvalue())
    return path


def test_infer_through_a_served_artifact(artifact, tmp_path):
    out = tmp_path / "r.json"
    assert main(["bench", "--artifact", str(artifact), "--concurrency", "1,4",
                 "--json", str(out), *QUICK]) == 0  # fmt: skip
    runs = load_result(out)["runs"]
    for run in runs:
        assert run["variant"].endswith("/tflite/fp32") and run["model"] == "digits"
        assert run["target_kind"] == "artifact" and run["request_kind"] == "infer-binary"
        assert run["errors"] == {} and run["ok"] > 50
        assert run["server_stages"]["inference"]["count"] > 0
        assert 0 < run["server_stages"]["inference"]["mean_ms"] < run["latency_ms"]["p50"]


def test_predict_endpoint_with_image_files(artifact, tmp_path):
    out = tmp_path / "r.json"
    png = digit_png(tmp_path)
    assert main(["bench", "--artifact", str(artifact), "--files", str(png),
                 "--json", str(out), *QUICK]) == 0  # fmt: skip
    (run,) = load_result(out)["runs"]
    assert run["request_kind"] == "predict" and run["errors"] == {} and run["ok"] > 20
    assert run["server_stages"]["preprocess"]["count"] > 0


def test_profile_reports_the_server_memory(artifact, tmp_path):
    out = tmp_path / "p.json"
    assert main(["bench", "--profile", "--profile-requests", "200", "--artifact", str(artifact),
                 "--json", str(out), *QUICK]) == 0  # fmt: skip
    (profile,) = json.loads(out.read_text())["profiles"]
    assert profile["memory"]["source"] == "proc"
    assert profile["memory"]["rss_bytes"] > 30 * 2**20  # python + numpy + LiteRT at least
    assert profile["service_time"]["mean_s"] > 0
    assert profile["sustainable_rate_rps"] is not None

"""bench against `tf2aif serve` on a real converted digits artifact (TFLite fp32)."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from tf2aif.bench.result import load_result
from tf2aif.bench.targets import host_platform
from tf2aif.cli.main import main
from tf2aif.resources import data_dir

from .test_units import record_document, record_image

pytest.importorskip("tf2aif.image.server.app", reason="needs the tf2aif server")
pytestmark = pytest.mark.conversion

REPO = Path(__file__).resolve().parents[2]
QUICK = ["--warmup", "0.5", "--window", "0.5", "--max-duration", "2", "--quiet"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """The digits CNN, trained (about 8 s) and converted to TFLite fp32 by tf2aif's converter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf2aif.image.convert import ConvertSpec, run_conversion

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

    from tf2aif.image.plugins import load_module

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


def test_profile_of_a_built_project_is_what_place_reads(artifact, tmp_path, capsys):
    """bench --profile on a project's artifact writes tf2aif-profile.json beside its build
    record; `tf2aif place` takes the two as they are and places an app with them."""
    variant = f"{host_platform()}/tflite/fp32"
    shutil.copytree(artifact, tmp_path / ".tf2aif" / "artifacts" / "convert-tflite-fp32")
    record = record_document("digits", [record_image("serve-tflite-fp32", [variant],
                                                     tags=["r/digits:tflite-fp32"])])  # fmt: skip
    (tmp_path / "tf2aif-record.json").write_text(json.dumps(record))
    assert main(["bench", "--profile", "--profile-requests", "200", "--artifact",
                 str(tmp_path / ".tf2aif" / "artifacts" / "convert-tflite-fp32"), *QUICK]) == 0  # fmt: skip
    document = json.loads((tmp_path / "tf2aif-profile.json").read_text())
    jsonschema.validate(
        document, json.loads((data_dir("schema") / "bench-profile.schema.json").read_text())
    )
    (profile,) = document["profiles"]
    assert profile["variant"] == variant and profile["model"] == "digits"
    assert profile["memory"]["source"] == "proc"
    assert profile["memory"]["rss_bytes"] > 30 * 2**20  # python + numpy + LiteRT at least
    service = profile["service_time"]
    assert service["requests"] == 200 and service["errors"] == 0
    # the server's own CPU per request: some, and less than the client-observed latency
    assert 0 < service["server_cpu_s"] < service["mean_s"]
    # cold starts: the server's CPU per request after each idle spell, and the curve fitted to it
    cold = service["cold"]
    assert [p["gap_s"] for p in cold["points"]] == [0.005, 0.02, 0.08]
    assert all(p["server_cpu_s"] > 0 for p in cold["points"])
    assert cold["extra_s"] >= 0 and cold["tau_s"] > 0
    assert profile["sustainable_rate_rps"] is not None

    (tmp_path / "cluster.yaml").write_text(
        f"version: 1\nnodes:\n  - {{name: edge, platform: {host_platform()}, cores: 1, memory_mb: 2048}}\n"
    )
    # a rate that keeps the node under a third busy by place's own model, cold starts included:
    # at a low rate every request may pay the cold extra, which a loaded machine can make large
    per_request = service["server_cpu_s"] + cold["extra_s"]
    rate = round(min(0.3 * profile["sustainable_rate_rps"], 0.3 / per_request), 2)
    (tmp_path / "apps.yaml").write_text(
        "version: 1\n"
        "models:\n  digits: {record: tf2aif-record.json, profiles: tf2aif-profile.json}\n"
        f"apps:\n  - {{name: reader, model: digits, rate: {rate}, slo_ms: 1000}}\n"
    )
    capsys.readouterr()
    assert main(["place", "--cluster", str(tmp_path / "cluster.yaml"),
                 "--apps", str(tmp_path / "apps.yaml"), "--json"]) == 0  # fmt: skip
    (placed,) = json.loads(capsys.readouterr().out)["assignments"]
    assert placed["app"] == "reader" and placed["variant"] == variant
    assert placed["node"] == "edge" and placed["image"] == "r/digits:tflite-fp32"
    assert 0 < placed["predicted_mean_ms"] < 1000

"""A real model planned in one project is not inspected again in a fresh copy of the project:
the per-user cache answers, in a process where importing TensorFlow fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tf2aif.cli.main import main

from projects import write_project

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent

MANIFEST = """\
version: 1
name: lstm
model: {path: models/m}
processing: {module: app/processing.py}
targets:
  platforms: [cpu]
  runtimes: [tflite, onnxruntime]
  precisions: [fp32]
"""

# `tf2aif plan --json` with TensorFlow blocked (tests/no_tensorflow.py) before anything loads
PLAN_WITHOUT_TENSORFLOW = """\
import sys
sys.path.insert(0, sys.argv[1])
from no_tensorflow import Blocker
sys.meta_path.insert(0, Blocker())
from tf2aif.cli.main import main
raise SystemExit(main(["plan", "--json", sys.argv[2]]))
"""


def test_a_fresh_checkout_plans_from_the_user_cache_without_tensorflow(
    lstm_model, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    first = write_project(tmp_path / "first", MANIFEST, source=lstm_model)
    assert main(["plan", "--json", str(first)]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert list((tmp_path / "xdg" / "tf2aif" / "inspect").glob("sha256-*.json"))

    second = write_project(
        tmp_path / "second", MANIFEST, source=lstm_model
    )  # same bytes, no .tf2aif folder
    assert not (second.parent / ".tf2aif").exists()
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "builder"), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", PLAN_WITHOUT_TENSORFLOW, str(TESTS), str(second)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "model not inspected" not in done.stderr
    replanned = json.loads(done.stdout)
    assert replanned["skipped"] == planned["skipped"]
    assert {s["cell"] for s in replanned["skipped"] if s["by_model"]} == {"cpu/tflite/fp32"}
    assert list((second.parent / ".tf2aif" / "inspect").glob("sha256-*.json"))

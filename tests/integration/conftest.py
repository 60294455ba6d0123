"""Real Docker integration tests (marked docker): tests/conftest.py skips them with a reason
unless --run-docker is given and a Docker engine answers. They need scripts/docker-up.sh to have
run (engine, buildx, qemu binfmt for arm64, registry on 127.0.0.1:5000) and reach PyPI and the
Debian mirror.

    pytest tests/integration --run-docker
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REGISTRY = os.environ.get("TF2AIF_TEST_REGISTRY", "127.0.0.1:5000")
STATE = Path(os.environ.get("TF2AIF_STATE", "/root/dv"))


def tf2aif(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 3600):
    """Run the real CLI in a subprocess; returns (CompletedProcess, seconds)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO / "builder"), **(env or {})}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tf2aif", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc, time.monotonic() - started


@pytest.fixture(scope="session")
def stand_in_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tf2aif bases --local`: the multi-arch stand-in pushed, and a vendor map for it."""
    map_file = tmp_path_factory.mktemp("stand-in") / "vendor-map.yaml"
    proc, _ = tf2aif("bases", "--local", "--registry", REGISTRY, "--map", str(map_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return map_file


@pytest.fixture(scope="session")
def digits_model() -> Path:
    """The demo model, trained once per version of the trainer and kept under $TF2AIF_STATE
    (same model bytes -> conversion stages stay cache hits across test sessions)."""
    trainer = REPO / "examples" / "digits" / "train.py"
    key = hashlib.sha256(trainer.read_bytes()).hexdigest()[:12]
    model = STATE / "test-models" / f"digits-{key}"
    if not (model / "saved_model.pb").is_file():
        partial = model.with_name(model.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        env = {**os.environ, "PYTHONPATH": str(REPO / "builder")}
        proc = subprocess.run(
            [sys.executable, str(trainer), str(partial)], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        partial.rename(model)
    return model


def demo_project(root: Path, model: Path, registry: str) -> Path:
    """A copy of the demo (manifest, plug-ins, model) in `root`, built there by the tests and
    published to `registry` (a repository of its own: others may push the demo meanwhile)."""
    root.mkdir(parents=True, exist_ok=True)
    text = (REPO / "tf2aif.yaml").read_text()
    (root / "tf2aif.yaml").write_text(re.sub(r"(?m)^registry: .*$", f"registry: {registry}", text))
    shutil.copytree(REPO / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "models").mkdir(exist_ok=True)
    shutil.copytree(model, root / "models" / "digits")
    return root

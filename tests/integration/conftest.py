"""Real Docker integration tests (marked docker): tests/conftest.py skips them with a reason
unless --run-docker is given and a Docker engine answers. They need scripts/docker-up.sh to have
run (engine, buildx, qemu binfmt for arm64, registry on 127.0.0.1:5000) and reach PyPI and the
Debian mirror.

    pytest tests/integration --run-docker
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def free_port_of(container, port: str = "8080/tcp") -> int:
    """The host port Docker published the container's `port` on."""
    container.reload()
    return int(container.ports[port][0]["HostPort"])


def wait_ready(url: str, container, timeout: float) -> None:
    """Until /v2/health/ready answers 200; fails with the container's last logs if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        container.reload()
        if container.status == "exited" or b"uncaught target signal" in container.logs():
            break  # exited, or a thread crashed under qemu and the server will never be ready
        time.sleep(1)
    logs = container.logs().decode(errors="replace")[-3000:]
    raise AssertionError(f"{container.image.tags} not ready after {timeout:.0f} s:\n{logs}")


def export_over_stand_in(root: Path, model: Any) -> Path:
    """Export a Keras model where `write_project` left a stand-in SavedModel (models/m)."""
    shutil.rmtree(root / "models" / "m")
    model.export(str(root / "models" / "m"), verbose=False)
    return root


def bake_first_image(project: Path, vendor_map: Path) -> dict:
    """`tf2aif bake` of a project on a vendor map at a fixed SOURCE_DATE_EPOCH: the record of its
    first image (tags, labels, fidelity). Give it the session's `stand_in_map`: pushing an
    amd64-only stand-in under the same tag would hand the tests that reuse it another image."""
    proc, _ = tf2aif(
        "bake", str(project / "tf2aif.yaml"), "--vendor-map", str(vendor_map),
        env={"SOURCE_DATE_EPOCH": "1700000000"},
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return json.loads((project / "tf2aif-record.json").read_text())["images"][0]


@contextlib.contextmanager
def serving_container(tag: str, timeout: float = 180) -> Iterator[tuple[str, Any]]:
    """Run an image with its HTTP port on a free local port: (base url, container) once it is
    ready; the container is removed afterwards."""
    import docker

    client = docker.from_env()
    container = client.containers.run(tag, detach=True, ports={"8080/tcp": ("127.0.0.1", None)})
    try:
        url = f"http://127.0.0.1:{free_port_of(container)}"
        wait_ready(url, container, timeout=timeout)
        yield url, container
    finally:
        container.remove(force=True)
        client.close()

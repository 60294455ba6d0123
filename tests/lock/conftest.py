from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

REGISTRY = "127.0.0.1:5000"
# The vendor images the demo-like project below resolves to (recipes/tflite).
VENDOR_REFS = ("python:3.11-slim-bookworm", "tensorflow/tensorflow:2.21.0")


def _docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        return "the Docker engine does not answer (scripts/docker-up.sh starts one)"
    try:
        httpx.get(f"http://{REGISTRY}/v2/", timeout=3.0).raise_for_status()
    except httpx.HTTPError as exc:
        return f"no registry on {REGISTRY} ({exc}); scripts/docker-up.sh starts one"
    return None


@pytest.fixture(scope="session")
def docker_ready(request: pytest.FixtureRequest) -> None:
    """tests/conftest.py skips `docker`-marked tests without --run-docker; this also needs the
    registry."""
    if not request.config.getoption("--run-docker", default=False):
        pytest.skip("needs Docker and the local registry: pass --run-docker")
    problem = _docker_problem()
    if problem:
        pytest.skip(problem)


def write_project(root: Path) -> Path:
    """A valid project: tflite fp32 on cpu + arm, a stand-in SavedModel, a plug-in folder."""
    (root / "models" / "m" / "variables").mkdir(parents=True)
    (root / "models" / "m" / "saved_model.pb").write_bytes(b"graph-v1")
    (root / "models" / "m" / "variables" / "variables.index").write_bytes(b"index")
    (root / "app" / "__pycache__").mkdir(parents=True)
    (root / "app" / "processing.py").write_text(
        "from helpers import scale\n\n\ndef preprocess(payload, content_type):\n"
        "    return {'image': scale(payload)}\n\n\ndef postprocess(outputs):\n    return outputs\n"
    )
    (root / "app" / "helpers.py").write_text("def scale(x):\n    return x\n")
    (root / "app" / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"\0")
    manifest = root / "tf2aif.yaml"
    manifest.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: tiny
            model: {path: models/m}
            processing: {module: app/processing.py}
            targets: {platforms: [cpu, arm], runtimes: [tflite], precisions: [fp32]}
            registry: 127.0.0.1:5000/tf2aif-test
            """
        )
    )
    return manifest


@pytest.fixture
def pin_vendors() -> Callable[[Path, str], Path]:
    """Write a vendor map pointing every vendor image of the project at one reference."""

    def write(path: Path, target: str) -> Path:
        path.write_text(yaml.safe_dump(dict.fromkeys(VENDOR_REFS, target)))
        return path

    return write


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj")


@pytest.fixture
def push_tiny(docker_ready: None, tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """Build a FROM-scratch image holding one file for amd64 + arm64, push it, return the
    index digest buildx reported in its metadata file. Pushed manifests are deleted after."""
    pushed: list[tuple[str, str]] = []

    def push(ref: str, content: str) -> str:
        context = tmp_path / f"ctx-{uuid.uuid4().hex[:8]}"
        context.mkdir()
        (context / "payload.txt").write_text(content)
        (context / "Dockerfile").write_text("FROM scratch\nCOPY payload.txt /\n")
        metadata = context / "metadata.json"
        subprocess.run(
            ["docker", "buildx", "build", "--quiet", "--platform", "linux/amd64,linux/arm64",
             "--tag", ref, "--push", "--metadata-file", str(metadata), str(context)],
            check=True, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        digest = json.loads(metadata.read_text())["containerimage.digest"]
        pushed.append((ref, digest))
        return digest

    yield push
    for ref, digest in pushed:
        repo = ref.removeprefix(f"{REGISTRY}/").rsplit(":", 1)[0]
        httpx.delete(f"http://{REGISTRY}/v2/{repo}/manifests/{digest}", timeout=5.0)
    # The docker driver also keeps pushed images in the engine's store.
    refs = sorted({ref for ref, _ in pushed})
    subprocess.run(["docker", "image", "rm", "--force", *refs], capture_output=True, check=False)


@pytest.fixture
def unique_repo() -> str:
    return f"{REGISTRY}/tf2aif-test/lock-{uuid.uuid4().hex[:10]}"

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

REGISTRY = "127.0.0.1:5000"


def pytest_addoption(parser: pytest.Parser) -> None:
    with contextlib.suppress(ValueError):  # another test folder's conftest already added it
        parser.addoption(
            "--run-docker", action="store_true", default=False, help="run tests that need Docker"
        )


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
    if not request.config.getoption("--run-docker", default=False):
        pytest.skip("needs Docker and the local registry: pass --run-docker")
    problem = _docker_problem()
    if problem:
        pytest.skip(problem)


def write_project(root: Path, *, vendor: str = "example.org/vendor/python:3.11") -> Path:
    """A small project: manifest, model files, a plug-in folder, one base image folder."""
    (root / "models" / "m" / "variables").mkdir(parents=True)
    (root / "models" / "m" / "saved_model.pb").write_bytes(b"graph-v1")
    (root / "models" / "m" / "variables" / "variables.index").write_bytes(b"index")
    (root / "app" / "__pycache__").mkdir(parents=True)
    (root / "app" / "processing.py").write_text("from helpers import scale\n")
    (root / "app" / "helpers.py").write_text("def scale(x):\n    return x / 16\n")
    (root / "app" / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"\0")
    base = root / "base_images" / "serve-tiny"
    base.mkdir(parents=True)
    (base / "Dockerfile").write_text(f"ARG VENDOR_IMAGE={vendor}\nFROM ${{VENDOR_IMAGE}}\n")
    (base / "requirements.txt").write_text(
        textwrap.dedent(
            """\
            # pinned
            numpy==2.4.6 ; python_version >= "3.11"  # import: numpy
            numpy==2.2.6 ; python_version < "3.11"  # import: numpy
            uvicorn[standard]==0.38.0
            --only-binary :all:
            starlette>=0.40
            """
        )
    )
    manifest = root / "tf2aif.yaml"
    manifest.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: tiny
            model: {path: models/m}
            processing: {module: app/processing.py}
            """
        )
    )
    return manifest


@pytest.fixture
def make_project() -> Callable[..., Path]:
    return write_project


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

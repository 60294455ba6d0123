"""install.sh on unusual vendor images: one that already provides some requirements (they are
reused, not reinstalled) and one without any Python (it is installed with apt), amd64 only."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tf2aif.bases.folders import common_context_arg
from tf2aif.resources import data_dir

from .conftest import REGISTRY

pytestmark = pytest.mark.docker

BASE = data_dir("base_images") / "serve-tflite"
CA = Path("/root/dv/proxy-ca.pem")


def _vendor(tmp: Path, stand_in: str, run: str) -> str:
    """A fake vendor image derived from the stand-in, pushed so FROM can resolve it."""
    ref = f"{REGISTRY}/tf2aif-it/vendor-{uuid.uuid4().hex[:8]}:1"
    (tmp / "Dockerfile").write_text(f"FROM {stand_in}\nRUN {run}\n")
    subprocess.run(
        ["docker", "buildx", "build", "--provenance=false", "--platform", "linux/amd64",
         "--output", f"type=image,name={ref},push=true", str(tmp)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return ref


def _build_base(vendor: str, tag: str) -> str:
    argv = ["docker", "buildx", "build", "--progress", "plain", "--platform", "linux/amd64"]
    argv += ["--build-arg", f"VENDOR_IMAGE={vendor}", "--load", "-t", tag]
    argv += common_context_arg(BASE)  # install.sh comes from base_images/common
    if CA.is_file():
        argv += ["--secret", f"id=ca,src={CA}"]
    proc = subprocess.run([*argv, str(BASE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stderr


def _python(tag: str, code: str) -> str:
    proc = subprocess.run(
        ["docker", "run", "--rm", "--user", "10001", tag, "python", "-c", code],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture()
def stand_in(stand_in_map: Path) -> str:
    return yaml.safe_load(stand_in_map.read_text())["python:3.11-slim-bookworm"]


def test_requirements_the_vendor_provides_are_reused(tmp_path, stand_in):
    apt = "apt-get update -qq && apt-get install -y -qq --no-install-recommends"
    vendor = _vendor(tmp_path, stand_in, f"{apt} python3-yaml python3-pil")
    tag = f"tf2aif-it/base-reuse:{uuid.uuid4().hex[:8]}"
    log = _build_base(vendor, tag)
    assert "vendor image provides 'yaml', skipping: pyyaml==6.0.3" in log
    assert "vendor image provides 'PIL', skipping" in log
    where = json.loads(
        _python(
            tag,
            "import json, sys, yaml, PIL, ai_edge_litert, starlette; "
            "print(json.dumps([sys.prefix, yaml.__file__, PIL.__file__, starlette.__file__]))",
        )
    )
    prefix, yaml_file, pil_file, starlette_file = where
    assert prefix == "/opt/tf2aif/venv"
    assert yaml_file.startswith("/usr/lib/python3/dist-packages/")  # the vendor's copy
    assert pil_file.startswith("/usr/lib/python3/dist-packages/")
    assert starlette_file.startswith("/opt/tf2aif/venv/")  # installed by install.sh
    subprocess.run(["docker", "image", "rm", tag], capture_output=True)


def test_a_vendor_image_without_python_gets_one_from_apt(tmp_path, stand_in):
    purge = "apt-get purge -y -qq --auto-remove python3 python3-minimal python3.11-minimal"
    vendor = _vendor(tmp_path, stand_in, f"{purge} && ! command -v python3")
    tag = f"tf2aif-it/base-nopython:{uuid.uuid4().hex[:8]}"
    log = _build_base(vendor, tag)
    assert "apt-get install python3 python3-venv python3-pip ca-certificates" in log
    assert _python(tag, "import sys, ai_edge_litert; print(sys.prefix)") == "/opt/tf2aif/venv"
    user = subprocess.run(
        ["docker", "run", "--rm", tag, "id", "tf2aif"], capture_output=True, text=True
    ).stdout
    assert user.startswith("uid=10001(tf2aif)")
    subprocess.run(["docker", "image", "rm", tag], capture_output=True)

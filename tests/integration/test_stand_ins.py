"""`tf2aif bases --local`: a multi-arch stand-in in the registry, a vendor map, cached reruns."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tf2aif.bases.folders import DEFAULT_SBOM_GENERATOR
from tf2aif.bases.standins import DEMO_VENDOR_REFS

from .conftest import REGISTRY, tf2aif

pytestmark = pytest.mark.docker

STAND_IN = f"{REGISTRY}/stand-in/python:3.11-bookworm"


def test_vendor_map_points_every_demo_vendor_image_at_the_stand_in(stand_in_map):
    mapping = yaml.safe_load(stand_in_map.read_text())
    scanner = mapping.pop(DEFAULT_SBOM_GENERATOR)  # and BuildKit's SBOM generator at the scanner
    assert mapping == dict.fromkeys(DEMO_VENDOR_REFS, STAND_IN)
    assert scanner.startswith(f"{REGISTRY}/tf2aif/sbom-scanner:")


def test_stand_in_is_one_index_for_amd64_and_arm64(stand_in_map):
    raw = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", "--raw", STAND_IN],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in json.loads(raw)["manifests"]
    }
    assert platforms == {"linux/amd64", "linux/arm64"}


@pytest.mark.parametrize(
    ("platform", "machine"), [("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")]
)
def test_stand_in_runs_python_with_venv_on_each_platform(stand_in_map, platform, machine):
    code = "import ensurepip, platform, ssl, sys; print(platform.machine(), sys.version_info[:2])"
    proc = subprocess.run(
        ["docker", "run", "--rm", "--platform", platform, STAND_IN, "python3", "-c", code],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == machine
    assert "(3, 11)" in proc.stdout


def test_rerun_reuses_the_cached_rootfs_and_push(stand_in_map, tmp_path):
    proc, seconds = tf2aif(
        "bases", "--local", "--registry", REGISTRY, "--map", str(tmp_path / "m.yaml")
    )
    assert proc.returncode == 0, proc.stderr
    lines = {line[:14].strip(): line[14:].strip() for line in proc.stdout.splitlines()[:4]}
    assert lines == {
        "rootfs amd64": "cached",
        "rootfs arm64": "cached",
        "build+push": "cached",
        "sbom-scanner": "cached",
    }
    assert seconds < 30

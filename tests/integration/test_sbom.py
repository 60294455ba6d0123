"""`tf2aif bake --push --sbom` with the project's SBOM scanner (base_images/sbom-scanner, which
`tf2aif bases --local` pushes and maps in place of docker/buildkit-syft-scanner): the SPDX
attestation read back from the registry lists what is really installed in each platform's image.

One image of the demo (cpu/tflite/fp32: amd64 + arm64), in a repository of its own. After
test_demo_e2e its base and conversion stages are cache hits, so this costs the two scans
(~20 s each on 2 cores) and a push.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import uuid
from dataclasses import dataclass

import pytest
import yaml

from tf2aif.bases.folders import DEFAULT_SBOM_GENERATOR

from .conftest import REGISTRY, REPO, demo_project, tf2aif

pytestmark = pytest.mark.docker

TARGET = "serve-cpu-arm-tflite-fp32"
PLATFORMS = {"linux/amd64": "amd64", "linux/arm64": "arm64"}
REQUIREMENTS = REPO / "base_images" / "serve-tflite" / "requirements.txt"


@dataclass(frozen=True, kw_only=True)
class SbomBuild:
    log: str
    image: str  # repo@digest, as recorded
    scanner: str


@pytest.fixture(scope="module")
def sbom_build(tmp_path_factory, digits_model, stand_in_map) -> SbomBuild:
    registry = f"{REGISTRY}/tf2aif-it/sbom-{uuid.uuid4().hex[:8]}"
    root = demo_project(tmp_path_factory.mktemp("sbom") / "demo", digits_model, registry)
    proc, _ = tf2aif(
        "bake",
        str(root / "tf2aif.yaml"),
        "--vendor-map",
        str(stand_in_map),
        "--push",
        "--sbom",
        "--only",
        "cpu/tflite/fp32",
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    record = json.loads((root / "tf2aif-record.json").read_text())
    (image,) = [i for i in record["images"] if i["target"] == TARGET]
    repository = image["tags"][0].rpartition(":")[0]
    scanner = yaml.safe_load(stand_in_map.read_text())[DEFAULT_SBOM_GENERATOR]
    return SbomBuild(log=log, image=f"{repository}@{image['digest']}", scanner=scanner)


@pytest.fixture(scope="module")
def sboms(sbom_build) -> dict[str, dict]:
    """platform -> SPDX document, as `docker buildx imagetools inspect` reads them back."""
    out = subprocess.run(
        [
            "docker",
            "buildx",
            "imagetools",
            "inspect",
            sbom_build.image,
            "--format",
            "{{json .SBOM}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {p: value["SPDX"] for p, value in json.loads(out).items()}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _packages(document: dict) -> dict[str, set[str]]:
    """normalised name -> versions (a name can be both a Debian and a Python package)."""
    found: dict[str, set[str]] = {}
    for package in document["packages"]:
        found.setdefault(_normal(package["name"]), set()).add(package.get("versionInfo", ""))
    return found


def _pins() -> dict[str, str]:
    """name -> version of every unconditional pin in serve-tflite's requirements."""
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==([0-9][^ ;#]*)\s+#", line)
        if match:
            pins[_normal(match[1])] = match[2]
    return pins


def test_only_the_server_image_is_scanned_with_the_local_scanner(sbom_build):
    scans = re.findall(r"\[(\S+) (linux/\w+)\] generating sbom using (\S+)", sbom_build.log)
    assert {(t, p) for t, p, _ in scans} == {(TARGET, p) for p in PLATFORMS}
    assert {s for *_, s in scans} == {sbom_build.scanner}
    assert sbom_build.scanner.startswith(f"{REGISTRY}/tf2aif/sbom-scanner:")


def test_the_scanner_runs_on_the_build_platform_for_every_target_platform(sboms):
    # scan.py notes where it ran (the log does not say it when BuildKit reuses a cached scan)
    comments = {p: d["creationInfo"].get("comment", "") for p, d in sboms.items()}
    machine = platform.machine()
    assert comments == dict.fromkeys(
        PLATFORMS, f"tf2aif sbom-scanner: syft on linux/{machine} scanned sbom"
    )


def test_each_platform_has_an_spdx_document_from_syft(sboms):
    assert set(sboms) == set(PLATFORMS)
    for document in sboms.values():
        assert document["spdxVersion"] == "SPDX-2.3"
        assert "Tool: syft-1.18.1" in document["creationInfo"]["creators"]
        assert len(document["packages"]) > 100  # Debian packages + the server's Python deps


def test_sbom_lists_the_pinned_python_packages_and_the_platforms_debian_packages(sboms):
    pins = _pins()
    assert {"ai-edge-litert", "uvicorn", "prometheus-client"} <= set(pins)
    for name, arch in PLATFORMS.items():
        packages = _packages(sboms[name])
        for package, version in pins.items():
            assert version in packages.get(package, set()), (name, package, version)
        libc = [p for p in sboms[name]["packages"] if p["name"] == "libc6"]
        purls = [r["referenceLocator"] for p in libc for r in p.get("externalRefs", ())]
        assert any("pkg:deb/debian/libc6@" in u and f"arch={arch}" in u for u in purls), purls


def test_sbom_matches_what_pip_reports_inside_the_image(sbom_build, sboms):
    proc = subprocess.run(
        ["docker", "run", "--rm", "--platform", "linux/amd64", "--entrypoint", "python3"]
        + [sbom_build.image, "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    installed = {_normal(p["name"]): p["version"] for p in json.loads(proc.stdout)}
    packages = _packages(sboms["linux/amd64"])
    missing = {n: v for n, v in installed.items() if v not in packages.get(n, set())}
    assert len(installed) > 10 and not missing


def test_provenance_stays_attached_next_to_the_sbom(sbom_build):
    out = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", sbom_build.image]
        + ["--format", "{{json .Provenance}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert set(json.loads(out)) == set(PLATFORMS)

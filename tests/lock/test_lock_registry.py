"""The lock against the real local registry (127.0.0.1:5000): push, lock, change, check."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tf2aif.cli.main import main
from tf2aif.errors import LockError
from tf2aif.lock.resolvers import (
    probe_tools,
    resolve_with_buildx,
    resolve_with_registry,
)

pytestmark = pytest.mark.docker

STAND_IN = "127.0.0.1:5000/stand-in/python:3.11-bookworm"


def test_both_resolvers_agree_with_the_pushed_digest(push_tiny, unique_repo: str) -> None:
    ref = f"{unique_repo}:1"
    pushed = push_tiny(ref, "one")
    by_buildx = resolve_with_buildx(ref)
    by_registry = resolve_with_registry(ref)
    assert by_buildx.digest == by_registry.digest == pushed
    assert by_buildx.platforms == by_registry.platforms == ("linux/amd64", "linux/arm64")


def test_lock_change_the_image_and_check_fails(
    push_tiny, unique_repo: str, project: Path, pin_vendors, capsys
) -> None:
    ref = f"{unique_repo}:1"
    first = push_tiny(ref, "one")
    vendor_map = pin_vendors(project.parent / "vendor-map.yaml", ref)
    argv = ["lock", str(project), "--vendor-map", str(vendor_map)]

    assert main(argv) == 0
    locked = yaml.safe_load((project.parent / "tf2aif.lock").read_text())
    assert locked["images"]["python:3.11-slim-bookworm"] == {
        "source": ref,
        "digest": first,
        "platforms": ["linux/amd64", "linux/arm64"],
    }
    assert main([*argv, "--check"]) == 0
    assert main([*argv, "--check", "--resolver", "registry"]) == 0

    second = push_tiny(ref, "two")  # same tag, new content
    assert second != first
    capsys.readouterr()
    assert main([*argv, "--check"]) == 1
    err = capsys.readouterr().err
    for vendor in ("python:3.11-slim-bookworm", "tensorflow/tensorflow:2.21.0"):
        assert f"  image    {vendor} now resolves to {second} (locked {first})" in err
    # Files did not change: the offline check (no registry) still passes.
    assert main([*argv, "--check", "--offline"]) == 0


def test_locked_vendor_map_keeps_naming_the_locked_content(
    push_tiny, unique_repo: str, project: Path, pin_vendors
) -> None:
    ref = f"{unique_repo}:1"
    first = push_tiny(ref, "one")
    vendor_map = pin_vendors(project.parent / "vendor-map.yaml", ref)
    pinned_map = project.parent / "pinned.yaml"
    argv = ["lock", str(project), "--vendor-map", str(vendor_map)]
    assert main([*argv, "--write-vendor-map", str(pinned_map)]) == 0
    push_tiny(ref, "two")
    pinned = yaml.safe_load(pinned_map.read_text())["python:3.11-slim-bookworm"]
    assert pinned == f"{ref}@{first}"
    # The tag moved on; the pinned reference still names (and fetches) the first content.
    assert resolve_with_buildx(pinned).digest == first
    raw = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", "--raw", pinned],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert '"mediaType": "application/vnd.oci.image.index.v1+json"' in raw


def test_missing_image_fails_with_its_name(docker_ready, unique_repo: str) -> None:
    with pytest.raises(LockError, match="not found"):
        resolve_with_buildx(f"{unique_repo}:missing")
    with pytest.raises(LockError, match=r"HTTP 404"):
        resolve_with_registry(f"{unique_repo}:missing")


def test_lock_cli_reports_an_unresolvable_image(
    docker_ready, unique_repo: str, project: Path, pin_vendors, capsys
) -> None:
    vendor_map = pin_vendors(project.parent / "vendor-map.yaml", f"{unique_repo}:missing")
    argv = ["lock", str(project), "--vendor-map", str(vendor_map), "--resolver", "registry"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "cannot resolve 2 image reference(s) to a digest:" in err
    assert f"  {unique_repo}:missing: http://127.0.0.1:5000/v2/" in err


def test_tool_versions_from_pip_list_in_a_real_image(docker_ready) -> None:
    present = subprocess.run(["docker", "image", "inspect", STAND_IN], capture_output=True)
    if present.returncode != 0:
        pytest.skip(f"{STAND_IN} is not in the engine (scripts/local-bases.sh builds it)")
    tools = probe_tools(STAND_IN, python="python3")
    assert tools.source == f"pip list in {STAND_IN}"
    assert set(tools.packages) >= {"pip", "setuptools"}
    assert all(version[0].isdigit() for version in tools.packages.values())

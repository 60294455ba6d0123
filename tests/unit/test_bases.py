"""bases/: stand-in plan, mmdebstrap/buildx argv, vendor map; the base folder listing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tf2aif.bases.folders import DEFAULT_SBOM_GENERATOR, base_folders
from tf2aif.bases.standins import (
    DEMO_VENDOR_REFS,
    buildx_scanner_argv,
    buildx_stand_in_argv,
    debian_mirrors,
    mmdebstrap_argv,
    plan_sbom_scanner,
    plan_stand_ins,
    render_vendor_map,
    stand_in_dockerfile,
    vendor_map,
)
from tf2aif.errors import Tf2aifError
from tf2aif.resources import data_dir

SOURCES = """\
Types: deb
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def _plan(tmp_path, **kw):
    args = dict(
        env={"TF2AIF_STATE": str(tmp_path)},
        registry="127.0.0.1:5000/",
        arches=["amd64", "arm64", "amd64"],
        vendor_refs=DEMO_VENDOR_REFS,
        map_file=tmp_path / "vendor-map.yaml",
        sources_text=SOURCES,
    )
    return plan_stand_ins(**(args | kw))


def test_debian_mirrors_from_deb822_and_defaults():
    assert debian_mirrors(SOURCES) == (
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    )
    assert debian_mirrors("") == (
        "http://deb.debian.org/debian",
        "http://deb.debian.org/debian-security",
    )


def test_plan_caches_under_state_dir_and_dedups_arches(tmp_path):
    plan = _plan(tmp_path)
    assert plan.arches == ("amd64", "arm64")
    assert plan.platforms == ("linux/amd64", "linux/arm64")
    assert plan.image == "127.0.0.1:5000/stand-in/python:3.11-bookworm"
    assert plan.rootfs("arm64") == tmp_path / "stand-ins" / f"rootfs-bookworm-{plan.key}-arm64.tar"


def test_plan_key_changes_with_the_package_set(tmp_path):
    plan = _plan(tmp_path)
    other = type(plan)(**{**plan.__dict__, "packages": (*plan.packages, "curl")})
    assert plan.key != other.key
    assert plan.rootfs("amd64") != other.rootfs("amd64")


def test_plan_rejects_unknown_arch(tmp_path):
    with pytest.raises(Tf2aifError, match=r"unsupported stand-in architecture\(s\) \['riscv64'\]"):
        _plan(tmp_path, arches=["amd64", "riscv64"])


def test_mmdebstrap_argv(tmp_path):
    plan = _plan(tmp_path)
    assert mmdebstrap_argv(plan, "arm64", Path("/c/out.tar")) == [
        "mmdebstrap", "--quiet", "--variant=minbase", "--architectures=arm64",
        "--include=python3,python3-venv,python3-pip,ca-certificates",
        "bookworm", "/c/out.tar",
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://mirror.example/debian-security bookworm-security main",
    ]  # fmt: skip


def test_stand_in_dockerfile_and_buildx_argv(tmp_path):
    plan = _plan(tmp_path)
    text = stand_in_dockerfile(plan)
    assert text.splitlines()[:3] == [
        "FROM scratch",
        "ARG TARGETARCH",
        f"ADD rootfs-bookworm-{plan.key}-${{TARGETARCH}}.tar /",
    ]
    assert buildx_stand_in_argv(plan) == [
        "docker", "buildx", "build", "--platform", "linux/amd64,linux/arm64",
        "--provenance=false",
        "--output", "type=image,name=127.0.0.1:5000/stand-in/python:3.11-bookworm,push=true",
        str(plan.context_dir),
    ]  # fmt: skip


def test_vendor_map_is_yaml_mapping_every_demo_ref_to_the_stand_in(tmp_path):
    plan = _plan(tmp_path)
    text = render_vendor_map(vendor_map(plan))
    assert yaml.safe_load(text) == {
        "tensorflow/tensorflow:2.21.0": plan.image,
        "python:3.11-slim-bookworm": plan.image,
        "openvino/ubuntu22_runtime:2025.3.0": plan.image,
    }
    assert text.splitlines()[1] == (
        '"openvino/ubuntu22_runtime:2025.3.0": "127.0.0.1:5000/stand-in/python:3.11-bookworm"'
    )


def test_base_folders_lists_every_shipped_base_with_its_vendor_default():
    folders = {f.name: f.vendor_default for f in base_folders(data_dir("base_images"))}
    assert folders == {
        "bench-client": "python:3.11-slim-bookworm",
        "convert-tf": "tensorflow/tensorflow:2.21.0",
        "convert-tflite-flex": "python:3.11-slim-bookworm",
        "convert-vitis-ai": "xilinx/vitis-ai-tensorflow2-cpu:3.5.0",
        "serve-onnxruntime": "python:3.11-slim-bookworm",
        "serve-openvino": "openvino/ubuntu22_runtime:2025.3.0",
        "serve-tensorrt": "nvcr.io/nvidia/tensorrt:24.12-py3",
        "serve-tf": "tensorflow/tensorflow:2.21.0",
        "serve-tflite": "python:3.11-slim-bookworm",
        "serve-tflite-flex": "python:3.11-slim-bookworm",
        "serve-vitis-ai": "xilinx/vitis-ai-runtime:3.5.0",
        "sbom-scanner": "python:3.11-slim-bookworm",
    }


def test_base_folders_reports_a_dockerfile_without_vendor_arg(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "Dockerfile").write_text("FROM python:3.11\n")
    with pytest.raises(Tf2aifError, match=r"broken/Dockerfile: no 'ARG VENDOR_IMAGE=<default>'"):
        base_folders(tmp_path)


def test_base_folders_never_lists_the_common_folder(tmp_path):
    for name in ("common", "serve-x"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text(
            "ARG VENDOR_IMAGE=r/x:1\nFROM ${VENDOR_IMAGE}\n"
        )
    assert [f.name for f in base_folders(tmp_path)] == ["serve-x"]


def _scanner(tmp_path, folder=None, **kw):
    return plan_sbom_scanner(
        _plan(tmp_path, **kw),
        registry="127.0.0.1:5000/",
        folder=folder or data_dir("base_images") / "sbom-scanner",
    )


def test_sbom_scanner_is_built_on_the_stand_in_for_its_platforms_and_pushed(tmp_path):
    scanner = _scanner(tmp_path)
    assert scanner.image.startswith("127.0.0.1:5000/tf2aif/sbom-scanner:")
    assert scanner.replaces == DEFAULT_SBOM_GENERATOR == "docker/buildkit-syft-scanner:stable-1"
    assert buildx_scanner_argv(scanner, "/tmp/ca.pem") == [
        "docker", "buildx", "build", "--platform", "linux/amd64,linux/arm64",
        "--provenance=false",
        "--build-arg", "VENDOR_IMAGE=127.0.0.1:5000/stand-in/python:3.11-bookworm",
        "--secret", "id=ca,src=/tmp/ca.pem",
        "--build-context", f"tf2aif-base-common={data_dir('base_images') / 'common'}",
        "--output", f"type=image,name={scanner.image},push=true",
        str(data_dir("base_images") / "sbom-scanner"),
    ]  # fmt: skip
    assert "--secret" not in buildx_scanner_argv(scanner)


def test_sbom_scanner_tag_follows_its_content_and_platforms(tmp_path):
    folder = tmp_path / "sbom-scanner"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM x\n")
    first = _scanner(tmp_path, folder).image
    assert _scanner(tmp_path, folder).image == first
    assert _scanner(tmp_path, folder, arches=["amd64"]).image != first
    (folder / "scan.py").write_text("print()\n")
    second = _scanner(tmp_path, folder).image
    assert second != first
    (tmp_path / "common").mkdir()  # base_images/common beside it: the shared install.sh
    (tmp_path / "common" / "install.sh").write_text("#!/bin/sh\n")
    assert _scanner(tmp_path, folder).image != second


def test_vendor_map_maps_the_default_sbom_generator_to_the_scanner(tmp_path):
    plan, scanner = _plan(tmp_path), _scanner(tmp_path)
    mapping = yaml.safe_load(render_vendor_map(vendor_map(plan, scanner)))
    assert mapping == {
        **dict.fromkeys(DEMO_VENDOR_REFS, plan.image),
        DEFAULT_SBOM_GENERATOR: scanner.image,
    }


def _tf2aif_imports(module: str) -> set[str]:
    import ast

    import tf2aif

    path = Path(tf2aif.__file__).parent.joinpath(*module.split(".")[1:]).with_suffix(".py")
    return {
        node.module
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import)
        for alias in node.names
    }


def test_base_folder_facts_live_apart_from_the_stand_in_builder():
    """Stages that only need folder names must not import the mmdebstrap builder, and the
    folder module starts no process."""
    assert not {"subprocess", "shutil"} & _tf2aif_imports("tf2aif.bases.folders")
    for module in (
        "tf2aif.pipeline.bake",
        "tf2aif.pipeline.recipes",
        "tf2aif.pipeline.build",
        "tf2aif.lock.inputs",
    ):
        assert "tf2aif.bases.standins" not in _tf2aif_imports(module), module

"""The base image contract, checked on the shipped Dockerfiles and requirements files, and the
shared base_images/common folder every base build gets as a named build context."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tf2aif.bases.folders import COMMON_CONTEXT, COMMON_FOLDER
from tf2aif.pipeline.bake import bake_dict, bake_json, write_build_dir
from tf2aif.pipeline.manifest import load_manifest
from tf2aif.pipeline.plan import make_plan
from tf2aif.pipeline.recipes import load_recipes
from tf2aif.pipeline.resolve import resolve
from tf2aif.resources import data_dir

from projects import write_project

ROOT = data_dir("base_images")
FOLDERS = sorted(p.parent.name for p in ROOT.glob("*/Dockerfile"))
# every runtime on every platform, plus the bench client: a plan using every base but sbom-scanner
FULL_WITH_CLIENT = (
    Path(__file__).parents[1] / "golden" / "cases" / "full" / "tf2aif.yaml"
).read_text()


@pytest.mark.parametrize("folder", FOLDERS)
def test_dockerfile_follows_the_base_contract(folder):
    lines = (ROOT / folder / "Dockerfile").read_text().splitlines()
    code = [line for line in lines if line and not line.startswith("#")]
    assert not any(line.startswith("# syntax=") for line in lines)
    assert re.fullmatch(r"ARG VENDOR_IMAGE=\S+", code[0])
    assert code[1] == "FROM ${VENDOR_IMAGE}"
    text = "\n".join(code)
    assert "--mount=type=secret,id=ca,required=false" in text
    assert "--mount=type=cache,target=/root/.cache/pip" in text
    assert "ENV TF2AIF_VENV=/opt/tf2aif/venv" in text
    assert "PATH=/opt/tf2aif/venv/bin:${PATH}" in text
    # the CA reaches RUN only as a secret: never copied, never an ARG or ENV
    assert not re.search(r"(COPY|ADD|ARG|ENV)\b.*\b(ca|cert|crt|pem)\b", text, re.IGNORECASE)


def test_the_common_folder_is_shared_not_a_base():
    assert COMMON_FOLDER == "common" and COMMON_FOLDER not in FOLDERS
    assert (ROOT / COMMON_FOLDER / "install.sh").read_text().startswith("#!/bin/sh\n")
    assert len(FOLDERS) == 12


@pytest.mark.parametrize("folder", FOLDERS)
def test_dockerfile_copies_install_sh_from_the_common_context(folder):
    assert not (ROOT / folder / "install.sh").exists()  # one copy only: base_images/common
    text = (ROOT / folder / "Dockerfile").read_text()
    copies = [line for line in text.splitlines() if line.startswith(("COPY", "ADD"))]
    assert copies[:2] == [
        f"COPY --from={COMMON_CONTEXT} install.sh /opt/tf2aif/base/",
        "COPY requirements*.txt /opt/tf2aif/base/",
    ]
    assert "    sh /opt/tf2aif/base/install.sh /opt/tf2aif/base/requirements" in text
    # the header says how to build it by hand
    assert (
        f"#   docker build --build-context {COMMON_CONTEXT}=base_images/{COMMON_FOLDER} "
        f"base_images/{folder}\n"
    ) in text


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_requirement_is_pinned_and_names_its_module(folder):
    for path in (ROOT / folder).glob("requirements*.txt"):
        for line in path.read_text().splitlines():
            if not line or line.startswith("#"):
                continue
            assert re.fullmatch(
                r"[A-Za-z0-9_.-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.]*( ; [^#]+)?  # import: [A-Za-z0-9_.]+",
                line,
            ), f"{path.name}: {line}"


@pytest.mark.parametrize("folder", [f for f in FOLDERS if f.startswith("serve-")])
def test_serving_bases_install_the_server_deps(folder):
    modules = set(re.findall(r"# import: (\S+)", (ROOT / folder / "requirements.txt").read_text()))
    assert {"numpy", "starlette", "uvicorn", "prometheus_client", "PIL", "yaml"} <= modules
    assert {"grpc", "google.protobuf", "grpc_health"} <= modules  # the gRPC endpoint, its health


def test_every_emitted_base_target_gets_the_common_context(tmp_path):
    file = write_project(tmp_path, FULL_WITH_CLIENT)
    plan = make_plan(resolve(load_manifest(file)[0], load_recipes(env={})), env={})
    targets = bake_dict(plan)["target"]
    bases = {name: t for name, t in targets.items() if name.startswith("base-")}
    recipes = load_recipes(env={}).recipes
    option_only = {  # bases a recipe option switches to (the full case sets none)
        ref.base
        for r in recipes
        for images in r.option_images.values()
        for ref in (images.converter, *images.platforms.values())
    }
    assert {t["context"].rsplit("/", 1)[1] for t in bases.values()} == {
        f for f in FOLDERS if f != "sbom-scanner" and f not in option_only
    }  # every base the plan can use, the bench client's included
    for target in bases.values():
        assert target["contexts"] == {COMMON_CONTEXT: ".tf2aif/base_images/common"}
    for name, target in targets.items():
        if not name.startswith("base-"):
            assert COMMON_CONTEXT not in target.get("contexts", {})
    write_build_dir(plan, bake_json(plan))
    copied = tmp_path / ".tf2aif" / "base_images"
    assert (copied / "common" / "install.sh").read_bytes() == (
        ROOT / "common" / "install.sh"
    ).read_bytes()
    assert [p.parent.name for p in copied.glob("*/install.sh")] == ["common"]


def test_the_build_folder_carries_no_checkout_times(tmp_path):
    """COPY keeps file times: every staged file and folder gets one fixed time, so two runners
    with fresh checkouts copy identical layers."""
    from tf2aif.pipeline.bake import STAGED_MTIME

    file = write_project(tmp_path, FULL_WITH_CLIENT)
    plan = make_plan(resolve(load_manifest(file)[0], load_recipes(env={})), env={})
    write_build_dir(plan, bake_json(plan))
    staged = [
        path
        for folder in ("context", "base_images")
        for path in [tmp_path / ".tf2aif" / folder, *(tmp_path / ".tf2aif" / folder).rglob("*")]
    ]
    assert len(staged) > 50
    assert {p.lstat().st_mtime for p in staged} == {STAGED_MTIME}

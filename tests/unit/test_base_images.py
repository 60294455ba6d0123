"""The base image contract, checked on the shipped Dockerfiles and requirements files."""

from __future__ import annotations

import re

import pytest

from tf2aif.resources import data_dir

ROOT = data_dir("base_images")
FOLDERS = sorted(p.parent.name for p in ROOT.glob("*/Dockerfile"))
INSTALL = (ROOT / "convert-tf" / "install.sh").read_bytes()


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


@pytest.mark.parametrize("folder", FOLDERS)
def test_install_script_copies_are_identical(folder):
    assert (ROOT / folder / "install.sh").read_bytes() == INSTALL


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

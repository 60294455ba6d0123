"""imagetools.py: every `docker buildx imagetools` argv, and the one module that builds them."""

from __future__ import annotations

import ast
import hashlib
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tf2aif
from tf2aif.pipeline.imagetools import (
    create_argv,
    inspect_config_argv,
    inspect_manifest_argv,
    inspect_raw_argv,
    raw_digest,
)

PACKAGE = Path(tf2aif.__file__).parent
REF = "127.0.0.1:5000/x/y:1"


def test_inspect_argvs_say_what_they_print():
    tools = ["docker", "buildx", "imagetools", "inspect"]
    assert inspect_manifest_argv(REF) == [*tools, "--format", "{{json .Manifest}}", REF]
    assert inspect_raw_argv(REF) == [*tools, "--raw", REF]
    assert inspect_config_argv(REF) == [*tools, REF, "--format", "{{json .Image}}"]


def test_create_tags_one_manifest_or_merges_several():
    assert create_argv(sources=("r@sha256:a",), tags=("r:1", "r:latest")) == [
        "docker", "buildx", "imagetools", "create", "-t", "r:1", "-t", "r:latest", "r@sha256:a",
    ]  # fmt: skip
    assert create_argv(
        sources=("r@sha256:a", "r@sha256:b"), tags=("r:s",), annotations=("index:k=v",)
    ) == [
        "docker", "buildx", "imagetools", "create", "-t", "r:s",
        "--annotation", "index:k=v", "r@sha256:a", "r@sha256:b",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="at least one source and one tag"):
        create_argv(sources=(), tags=("r:s",))


@pytest.mark.fuzz
@given(
    sources=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4),
    tags=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4),
)
def test_create_argv_keeps_every_tag_and_source_in_order(sources, tags):
    argv = create_argv(sources=sources, tags=tags)
    assert argv[:4] == ["docker", "buildx", "imagetools", "create"]
    assert [argv[i + 1] for i in range(4, 4 + 2 * len(tags), 2)] == tags
    assert argv[4 + 2 * len(tags) :] == sources


def test_raw_digest_hashes_the_manifest_bytes_or_says_none():
    raw = b'{"schemaVersion":2}'

    def found(argv, **kwargs):
        assert argv == inspect_raw_argv(REF)
        return subprocess.CompletedProcess(argv, 0, raw, b"")

    def missing(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 1, b"", b"not found")

    def no_docker(argv, **kwargs):
        raise FileNotFoundError("docker")

    assert raw_digest(REF, run=found) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert raw_digest(REF, run=missing) is None
    assert raw_digest(REF, run=no_docker) is None


def test_only_imagetools_py_spells_an_imagetools_command():
    """One module owns the argv: elsewhere the word may appear in prose, never as an argument."""
    spelled = sorted(
        file.relative_to(PACKAGE).as_posix()
        for file in PACKAGE.rglob("*.py")
        if file.name != "imagetools.py"
        for node in ast.walk(ast.parse(file.read_text()))
        if isinstance(node, ast.Constant) and node.value == "imagetools"
    )
    assert spelled == []

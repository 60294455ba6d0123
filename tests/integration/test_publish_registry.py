"""publish.py against a real bake and the real registry: staging push, then final tags by
digest only when every target succeeded; nothing tagged when one failed."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tf2aif.errors import BuildError
from tf2aif.pipeline.publish import (
    apply_tags,
    failed_steps,
    plan_tags,
    publish_targets,
    read_metadata,
    staging_overrides,
    staging_tag,
)

from .conftest import REGISTRY

pytestmark = pytest.mark.docker

DOCKERFILE = """\
ARG VENDOR_IMAGE
FROM ${VENDOR_IMAGE}
ARG WORD
ARG FAIL=0
RUN test "$FAIL" != 1 && echo "$WORD" > /word
"""


def _bake_file(tmp: Path, stand_in: str, repo: str, *, fail_b: bool) -> Path:
    (tmp / "Dockerfile").write_text(DOCKERFILE)
    target = {"context": ".", "platforms": ["linux/amd64", "linux/arm64"]}
    bake = {
        "group": {"default": {"targets": ["a", "b"]}},
        "target": {
            "a": target | {"args": {"VENDOR_IMAGE": stand_in, "WORD": "a"}, "tags": [f"{repo}:a"]},
            "b": target
            | {
                "args": {"VENDOR_IMAGE": stand_in, "WORD": "b", "FAIL": "1" if fail_b else "0"},
                "tags": [f"{repo}:b", f"{repo}:b-latest"],
            },
        },
    }
    path = tmp / "docker-bake.json"
    path.write_text(json.dumps(bake))
    return path


def _bake(bake_file: Path, run_id: str) -> tuple[subprocess.CompletedProcess, Path]:
    bake = json.loads(bake_file.read_text())
    metadata = bake_file.with_name("metadata.json")
    argv = ["docker", "buildx", "bake", "-f", str(bake_file), "--progress", "plain"]
    argv += ["--metadata-file", str(metadata), *staging_overrides(publish_targets(bake), run_id)]
    proc = subprocess.run(argv, cwd=bake_file.parent, capture_output=True, text=True)
    return proc, metadata


def _tags(repo: str) -> set[str]:
    name = repo.split("/", 1)[1]
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/{name}/tags/list", timeout=10) as r:
            return set(json.load(r).get("tags") or ())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return set()
        raise


def _digest(ref: str) -> str:
    out = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)["digest"]


@pytest.fixture()
def stand_in(stand_in_map: Path) -> str:
    import yaml

    return yaml.safe_load(stand_in_map.read_text())["python:3.11-slim-bookworm"]


def test_final_tags_point_at_the_pushed_digests(tmp_path, stand_in):
    repo = f"{REGISTRY}/tf2aif-it/publish-{uuid.uuid4().hex[:8]}"
    run_id = "ok1"
    bake_file = _bake_file(tmp_path, stand_in, repo, fail_b=False)
    proc, metadata = _bake(bake_file, run_id)
    assert proc.returncode == 0, proc.stderr[-3000:]
    targets = publish_targets(json.loads(bake_file.read_text()))
    staged = {t.name: staging_tag(t, run_id).rpartition(":")[2] for t in targets}
    assert _tags(repo) == set(staged.values())  # only staging tags before publishing

    pushed = read_metadata(metadata)
    created = apply_tags(plan_tags(targets, pushed, bake_ok=True))

    assert created == (f"{repo}:a", f"{repo}:b", f"{repo}:b-latest")
    assert _tags(repo) == {"a", "b", "b-latest", *staged.values()}
    for tag in created:
        target = tag.rpartition(":")[2].removesuffix("-latest")
        assert _digest(tag) == pushed[target].digest  # the very index that was built
    index = json.loads(
        subprocess.run(
            ["docker", "buildx", "imagetools", "inspect", "--raw", f"{repo}:a"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in index["manifests"]
        if m["platform"]["architecture"] != "unknown"  # attestation manifests
    }
    assert platforms == {"linux/amd64", "linux/arm64"}


def test_a_failed_target_publishes_nothing(tmp_path, stand_in):
    repo = f"{REGISTRY}/tf2aif-it/publish-{uuid.uuid4().hex[:8]}"
    bake_file = _bake_file(tmp_path, stand_in, repo, fail_b=True)
    proc, metadata = _bake(bake_file, "fail1")
    assert proc.returncode != 0
    failures = failed_steps(proc.stdout + proc.stderr, ["a", "b"])
    assert {f.target for f in failures} == {"b"}
    assert all(f.step.endswith('RUN test "1" != 1 && echo "b" > /word') for f in failures)

    targets = publish_targets(json.loads(bake_file.read_text()))
    with pytest.raises(BuildError, match="nothing was published") as info:
        plan_tags(targets, read_metadata(metadata), bake_ok=False)
    assert "b" in info.value.failed
    assert not {"a", "b", "b-latest"} & _tags(repo)  # no final tag exists

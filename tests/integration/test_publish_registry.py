"""The `--push` path against a real bake and the real registry, through the functions
`tf2aif bake --push` runs (build.run_phase, publish.staging_set_values, publish_final_tags):
staging push, then final tags by digest only when every target succeeded; nothing tagged when
one failed."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tf2aif.errors import BuildError
from tf2aif.pipeline.build import BuildOptions, Result, Status, run_phase
from tf2aif.pipeline.imagetools import inspect_manifest_argv, inspect_raw_argv
from tf2aif.pipeline.plan import BUILD_DIR
from tf2aif.pipeline.publish import (
    PublishTarget,
    publish_final_tags,
    read_metadata,
    split_tag,
    staging_set_values,
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


def _targets(bake_file: Path) -> tuple[PublishTarget, ...]:
    targets = json.loads(bake_file.read_text())["target"]
    return tuple(
        PublishTarget(
            name=name,
            repository=split_tag(spec["tags"][0])[0],
            final_tags=tuple(spec["tags"]),
        )
        for name, spec in sorted(targets.items())
    )


def _bake(bake_file: Path, run_id: str) -> tuple[list[Result], Path]:
    root = bake_file.parent
    (root / BUILD_DIR).mkdir(exist_ok=True)
    options = BuildOptions(push=True, load=False)
    set_values = staging_set_values(_targets(bake_file), run_id, output="type=image,push=true")
    results = run_phase(
        root,
        ["a", "b"],
        options,
        sink=lambda line: None,
        label="serve",
        set_values=set_values,
        bake_file=bake_file.name,
    )
    return results, root / BUILD_DIR / "metadata-serve.json"


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
        inspect_manifest_argv(ref),
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
    results, metadata = _bake(bake_file, run_id)
    assert all(results), results
    targets = _targets(bake_file)
    staged = {t.name: staging_tag(t, run_id).rpartition(":")[2] for t in targets}
    assert _tags(repo) == set(staged.values())  # only staging tags before publishing

    pushed = read_metadata(metadata)
    created = publish_final_tags(metadata, targets)

    assert created == (f"{repo}:a", f"{repo}:b", f"{repo}:b-latest")
    assert _tags(repo) == {"a", "b", "b-latest", *staged.values()}
    for tag in created:
        target = tag.rpartition(":")[2].removesuffix("-latest")
        assert _digest(tag) == pushed[target].digest  # the very index that was built
    index = json.loads(
        subprocess.run(
            inspect_raw_argv(f"{repo}:a"),
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
    results, metadata = _bake(bake_file, "fail1")
    by_target = {r.target: r for r in results}
    assert by_target["b"].status is Status.FAILED
    # the stage that failed and its error, read from the log the way `tf2aif bake` reads it
    assert re.match(r"linux/(amd64|arm64) \d+/\d+: .*exit code: 1", by_target["b"].reason), (
        by_target["b"].reason
    )

    with pytest.raises(BuildError, match="nothing was published") as info:
        publish_final_tags(metadata, _targets(bake_file))
    assert "b" in info.value.failed
    assert not {"a", "b", "b-latest"} & _tags(repo)  # no final tag exists

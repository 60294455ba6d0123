"""publish.py: the targets `--push` publishes, staging tags, metadata reading and the
all-or-nothing tagging plan; and that `run_build(push=True)` goes through exactly these."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf2aif.errors import BuildError, PlanError
from tf2aif.pipeline.build import BuildOptions, Buildx, run_build
from tf2aif.pipeline.imagetools import create_argv
from tf2aif.pipeline.manifest import load_manifest
from tf2aif.pipeline.plan import BUILD_DIR, make_plan
from tf2aif.pipeline.publish import (
    PublishTarget,
    apply_tags,
    plan_tags,
    publish_final_tags,
    publish_targets,
    read_metadata,
    split_tag,
    staging_set_values,
    staging_tag,
)
from tf2aif.pipeline.recipes import load_recipes
from tf2aif.pipeline.resolve import resolve

from projects import BASIC, write_project

REPO = "127.0.0.1:5000/tf2aif/digits"
TARGETS = (
    PublishTarget(
        name="serve-cpu-tf-fp32",
        repository=REPO,
        final_tags=(f"{REPO}:cpu-tf-fp32-abc", f"{REPO}:cpu-tf-fp32"),
    ),
    PublishTarget(
        name="serve-cpu_arm-tflite-fp32",
        repository=REPO,
        final_tags=(f"{REPO}:cpu_arm-tflite-fp32-def",),
    ),
)
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def test_split_tag_keeps_registry_port():
    assert split_tag("127.0.0.1:5000/x/y:v1") == ("127.0.0.1:5000/x/y", "v1")
    assert split_tag("127.0.0.1:5000/x/y") == ("127.0.0.1:5000/x/y", "latest")
    assert split_tag("python:3.11-slim") == ("python", "3.11-slim")


@pytest.fixture
def plan(tmp_path):
    manifest, _ = load_manifest(write_project(tmp_path, BASIC))
    return make_plan(resolve(manifest, load_recipes(env={})), env={})


def test_publish_targets_are_the_plan_images_under_their_final_tags(plan):
    targets = publish_targets(plan, plan.serves)
    assert [t.name for t in targets] == [s.name for s in plan.serves]
    first = plan.serves[0]
    assert targets[0] == PublishTarget(
        name=first.name, repository=first.image, final_tags=first.tags
    )
    assert all(split_tag(tag)[0] == t.repository for t in targets for tag in t.final_tags)


def test_publish_targets_rejects_no_registry_no_tags_and_foreign_tags(plan):
    with pytest.raises(PlanError, match="--push needs `registry:`"):
        publish_targets(replace(plan, registry=""), plan.serves)
    untagged = replace(plan.serves[0], tags=())
    with pytest.raises(BuildError, match=f"{untagged.name} has no tags"):
        publish_targets(plan, [untagged])
    foreign = replace(plan.serves[0], tags=(*plan.serves[0].tags, "r2/x:a"))
    with pytest.raises(BuildError, match=r"tags outside its repository .*\['r2/x'\]"):
        publish_targets(plan, [foreign])


def test_staging_tag_is_valid_and_unique_per_run():
    target = TARGETS[0]
    assert (
        staging_tag(target, "20261123T1500")
        == f"{REPO}:tf2aif-staging-20261123T1500-serve-cpu-tf-fp32"
    )
    long = PublishTarget(name="serve-" + "x" * 200, repository=REPO, final_tags=(f"{REPO}:a",))
    tag = staging_tag(long, "r1").rpartition(":")[2]
    assert len(tag) == 128
    assert tag != staging_tag(long, "r2").rpartition(":")[2]


def test_staging_set_values_push_under_staging_tags_only():
    values = staging_set_values(TARGETS, "r1", output="type=image,push=true")
    assert values == [
        f"serve-cpu-tf-fp32.tags={REPO}:tf2aif-staging-r1-serve-cpu-tf-fp32",
        "serve-cpu-tf-fp32.output=type=image,push=true",
        f"serve-cpu_arm-tflite-fp32.tags={REPO}:tf2aif-staging-r1-serve-cpu_arm-tflite-fp32",
        "serve-cpu_arm-tflite-fp32.output=type=image,push=true",
    ]


def _metadata(tmp_path, data):
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(data))
    return path


def test_read_metadata_keeps_targets_with_a_digest(tmp_path):
    path = _metadata(
        tmp_path,
        {
            "serve-cpu-tf-fp32": {"containerimage.digest": DIGEST_A, "image.name": f"{REPO}:s"},
            "convert-tflite-fp32": {
                "containerimage.digest": DIGEST_B,
                "image.name": "moby-dangling@x",
            },
            "base-serve-tf": {"buildx.build.ref": "default/default/abc"},
            "buildx.build.warnings": [],
        },
    )
    pushed = read_metadata(path)
    assert sorted(pushed) == ["convert-tflite-fp32", "serve-cpu-tf-fp32"]
    assert pushed["serve-cpu-tf-fp32"].digest == DIGEST_A
    assert read_metadata(tmp_path / "absent.json") == {}


def test_plan_tags_points_every_final_tag_at_the_pushed_digest(tmp_path):
    targets = TARGETS
    pushed = read_metadata(
        _metadata(
            tmp_path,
            {
                "serve-cpu-tf-fp32": {"containerimage.digest": DIGEST_A},
                "serve-cpu_arm-tflite-fp32": {"containerimage.digest": DIGEST_B},
            },
        )
    )
    plans = plan_tags(targets, pushed, bake_ok=True)
    assert [create_argv(sources=(p.source,), tags=p.tags) for p in plans] == [
        ["docker", "buildx", "imagetools", "create",
         "-t", f"{REPO}:cpu-tf-fp32-abc", "-t", f"{REPO}:cpu-tf-fp32", f"{REPO}@{DIGEST_A}"],
        ["docker", "buildx", "imagetools", "create",
         "-t", f"{REPO}:cpu_arm-tflite-fp32-def", f"{REPO}@{DIGEST_B}"],
    ]  # fmt: skip


def test_plan_tags_refuses_when_a_target_has_no_digest(tmp_path):
    pushed = read_metadata(
        _metadata(tmp_path, {"serve-cpu-tf-fp32": {"containerimage.digest": DIGEST_A}})
    )
    with pytest.raises(BuildError, match="failed for serve-cpu_arm-tflite-fp32") as info:
        plan_tags(TARGETS, pushed, bake_ok=True)
    assert info.value.failed == ("serve-cpu_arm-tflite-fp32",)
    assert info.value.exit_code == 3


def test_plan_tags_refuses_when_bake_failed_even_with_digests(tmp_path):
    pushed = read_metadata(
        _metadata(
            tmp_path,
            {
                "serve-cpu-tf-fp32": {"containerimage.digest": DIGEST_A},
                "serve-cpu_arm-tflite-fp32": {"containerimage.digest": DIGEST_B},
            },
        )
    )
    with pytest.raises(BuildError, match="nothing was published"):
        plan_tags(TARGETS, pushed, bake_ok=False)


def test_apply_tags_runs_in_order_and_names_what_was_tagged_on_failure():
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        code = 1 if len(calls) == 2 else 0
        return subprocess.CompletedProcess(argv, code, stdout="", stderr="denied")

    plans = plan_tags(
        TARGETS,
        {
            "serve-cpu-tf-fp32": _pushed("serve-cpu-tf-fp32", DIGEST_A),
            "serve-cpu_arm-tflite-fp32": _pushed("serve-cpu_arm-tflite-fp32", DIGEST_B),
        },
        bake_ok=True,
    )
    with pytest.raises(BuildError, match=r"already tagged: .*cpu-tf-fp32-abc, .*:cpu-tf-fp32\)"):
        apply_tags(plans, run=run)
    assert [c[-1] for c in calls] == [f"{REPO}@{DIGEST_A}", f"{REPO}@{DIGEST_B}"]


def _pushed(target, digest):
    from tf2aif.pipeline.publish import PushedImage

    return PushedImage(target=target, name="", digest=digest)


def test_push_goes_through_staging_tags_then_final_tags(plan, monkeypatch):
    """`run_build(push=True)`: the serve bake pushes under staging tags only; then every
    final tag is created from the digest buildx reported, through `publish_final_tags`."""
    bakes, tagged = [], []

    def fake_bake(argv, *, cwd, sink, env):
        bakes.append(argv)
        metadata = cwd / argv[argv.index("--metadata-file") + 1]
        targets = [a for a in argv if a in {s.name for s in plan.serves}]
        metadata.write_text(
            json.dumps({t: {"containerimage.digest": "sha256:" + "c" * 64} for t in targets})
        )
        return 0, []

    def fake_imagetools(argv, **kwargs):
        tagged.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr("tf2aif.pipeline.build._run", fake_bake)
    monkeypatch.setattr("tf2aif.pipeline.publish.subprocess.run", fake_imagetools)
    (Path(plan.root) / BUILD_DIR).mkdir(exist_ok=True)
    lines = []
    options = BuildOptions(push=True, load=False)
    run_build(plan, options, sink=lines.append, buildx=Buildx(version=(0, 20, 0), driver="docker"))
    serve = bakes[-1]
    sets = [serve[i + 1] for i, a in enumerate(serve) if a == "--set"]
    for target in publish_targets(plan, plan.serves):
        staging = [v for v in sets if v.startswith(f"{target.name}.tags=")]
        assert len(staging) == 1 and ":tf2aif-staging-" in staging[0]
        assert not any(tag in v for v in sets for tag in target.final_tags)
    expected = [
        create_argv(sources=(f"{s.image}@sha256:{'c' * 64}",), tags=s.tags) for s in plan.serves
    ]
    assert tagged == expected
    assert [line for line in lines if line.startswith("tagged ")] == [
        f"tagged {tag}" for s in plan.serves for tag in s.tags
    ]


def test_publish_final_tags_runs_nothing_when_a_digest_is_missing(tmp_path):
    calls = []
    metadata = _metadata(tmp_path, {"serve-cpu-tf-fp32": {"containerimage.digest": DIGEST_A}})
    with pytest.raises(BuildError, match="no final tag was created or moved"):
        publish_final_tags(metadata, TARGETS, run=lambda argv, **kw: calls.append(argv))
    assert calls == []


OCI_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@pytest.mark.fuzz
@given(
    name=st.from_regex(r"[a-zA-Z0-9_-]{1,300}", fullmatch=True),
    run_a=st.text(min_size=1, max_size=40),
    run_b=st.text(min_size=1, max_size=40),
)
def test_staging_tags_are_valid_oci_tags_unique_per_run(name, run_a, run_b):
    target = PublishTarget(name=name, repository=REPO, final_tags=(f"{REPO}:x",))
    repository, tag = split_tag(staging_tag(target, run_a))
    assert repository == REPO and OCI_TAG.fullmatch(tag)
    assert tag not in {split_tag(t)[1] for t in target.final_tags}

    def clean(run_id: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "-", run_id)

    if clean(run_a) != clean(run_b):
        assert split_tag(staging_tag(target, run_b))[1] != tag

"""publish.py: staging tags, metadata reading and the all-or-nothing tagging plan."""

from __future__ import annotations

import json
import subprocess

import pytest

from tf2aif.errors import BuildError
from tf2aif.pipeline.publish import (
    FailedStep,
    PublishTarget,
    apply_tags,
    failed_steps,
    imagetools_argv,
    plan_tags,
    publish_targets,
    read_metadata,
    split_tag,
    staging_overrides,
    staging_tag,
)

REPO = "127.0.0.1:5000/tf2aif/digits"
BAKE = {
    "group": {"default": {"targets": ["serve-cpu-tf-fp32", "serve-cpu_arm-tflite-fp32"]}},
    "target": {
        "base-serve-tf": {"context": ".tf2aif/base_images/serve-tf"},
        "convert-tflite-fp32": {"context": "."},
        "serve-cpu-tf-fp32": {"tags": [f"{REPO}:cpu-tf-fp32-abc", f"{REPO}:cpu-tf-fp32"]},
        "serve-cpu_arm-tflite-fp32": {"tags": [f"{REPO}:cpu_arm-tflite-fp32-def"]},
    },
}
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def test_split_tag_keeps_registry_port():
    assert split_tag("127.0.0.1:5000/x/y:v1") == ("127.0.0.1:5000/x/y", "v1")
    assert split_tag("127.0.0.1:5000/x/y") == ("127.0.0.1:5000/x/y", "latest")
    assert split_tag("python:3.11-slim") == ("python", "3.11-slim")


def test_publish_targets_are_the_tagged_ones_sorted():
    targets = publish_targets(BAKE)
    assert [t.name for t in targets] == ["serve-cpu-tf-fp32", "serve-cpu_arm-tflite-fp32"]
    assert targets[0] == PublishTarget(
        name="serve-cpu-tf-fp32",
        repository=REPO,
        final_tags=(f"{REPO}:cpu-tf-fp32-abc", f"{REPO}:cpu-tf-fp32"),
    )


def test_publish_targets_rejects_untagged_and_mixed_repositories():
    with pytest.raises(BuildError, match="convert-tflite-fp32 has no tags"):
        publish_targets(BAKE, ["convert-tflite-fp32"])
    mixed = {"target": {"t": {"tags": ["r1/x:a", "r2/x:a"]}}}
    with pytest.raises(BuildError, match=r"several repositories \['r1/x', 'r2/x'\]"):
        publish_targets(mixed)


def test_staging_tag_is_valid_and_unique_per_run():
    target = publish_targets(BAKE)[0]
    assert (
        staging_tag(target, "20261123T1500")
        == f"{REPO}:tf2aif-staging-20261123T1500-serve-cpu-tf-fp32"
    )
    long = PublishTarget(name="serve-" + "x" * 200, repository=REPO, final_tags=(f"{REPO}:a",))
    tag = staging_tag(long, "r1").rpartition(":")[2]
    assert len(tag) == 128
    assert tag != staging_tag(long, "r2").rpartition(":")[2]


def test_staging_overrides_push_under_staging_tags_only():
    argv = staging_overrides(publish_targets(BAKE), "r1")
    assert argv == [
        "--set", f"serve-cpu-tf-fp32.tags={REPO}:tf2aif-staging-r1-serve-cpu-tf-fp32",
        "--set", "serve-cpu-tf-fp32.output=type=image,push=true",
        "--set", f"serve-cpu_arm-tflite-fp32.tags={REPO}:tf2aif-staging-r1-serve-cpu_arm-tflite-fp32",
        "--set", "serve-cpu_arm-tflite-fp32.output=type=image,push=true",
    ]  # fmt: skip


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
    targets = publish_targets(BAKE)
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
    assert [imagetools_argv(p) for p in plans] == [
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
        plan_tags(publish_targets(BAKE), pushed, bake_ok=True)
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
        plan_tags(publish_targets(BAKE), pushed, bake_ok=False)


def test_apply_tags_runs_in_order_and_names_what_was_tagged_on_failure():
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        code = 1 if len(calls) == 2 else 0
        return subprocess.CompletedProcess(argv, code, stdout="", stderr="denied")

    plans = plan_tags(
        publish_targets(BAKE),
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


PROGRESS = """\
#11 [base-serve-tflite linux/arm64 stage-0 3/4] RUN sh /opt/tf2aif/base/install.sh
#11 DONE 80.1s
#14 [convert-tflite-int8 stage-0 4/4] RUN python -m tf2aif.image.convert --spec "$CONVERT_SPEC" --root /src --out /out
#14 3.20 FidelityError: top-1 agreement 0.97 < 1.01
#14 ERROR: process "/bin/sh -c python -m tf2aif.image.convert" did not complete successfully: exit code: 1
------
 > [convert-tflite-int8 stage-0 4/4] RUN python -m tf2aif.image.convert:
"""


def test_failed_steps_names_target_and_step():
    targets = ["base-serve-tflite", "convert-tflite-int8"]
    assert failed_steps(PROGRESS, targets) == (
        FailedStep(
            target="convert-tflite-int8",
            step='RUN python -m tf2aif.image.convert --spec "$CONVERT_SPEC" --root /src --out /out',
            error='process "/bin/sh -c python -m tf2aif.image.convert" did not complete successfully: '
            "exit code: 1",
        ),
    )


def test_failed_steps_of_a_single_target_build_have_no_prefix():
    progress = (
        '#8 [linux/amd64 2/2] RUN test "1" != 1\n'
        '#8 ERROR: process "/bin/sh -c test" did not complete successfully: exit code: 1\n'
        "#9 [stage-0 1/4] FROM x\n"
    )
    (step,) = failed_steps(progress, ["b"])
    assert (step.target, step.step) == ("b", 'RUN test "1" != 1')
    assert failed_steps(progress, ["a", "b"]) == ()

"""Shards from the plan: the CI matrix, exact on a known project and invariant on generated ones."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tf2aif.cli.main import main
from tf2aif.errors import ManifestError, PlanError
from tf2aif.pipeline.manifest import load_manifest
from tf2aif.pipeline.plan import make_plan
from tf2aif.pipeline.recipes import load_recipes
from tf2aif.pipeline.resolve import resolve
from tf2aif.shards.matrix import (
    Split,
    arch_of,
    artifact_ref,
    conversion_address,
    find_shard,
    matrix,
    plan_shards,
)

from projects import BASIC, write_project

GPU = """\
version: 1
name: mixed
model: {path: models/m}
calibration: {module: app/calibration.py}
targets:
  platforms: [cpu, arm, gpu, agx, alveo]
  runtimes: [tflite, onnxruntime, tensorrt, vitis-ai]
  precisions: [fp32, int8]
registry: r.example.com/ml
"""


@pytest.fixture(scope="module")
def recipes():
    return load_recipes(env={})


def plan_of(root, text, recipes):
    return replan(write_project(root, text), recipes)


def replan(manifest_file, recipes):
    manifest, _ = load_manifest(manifest_file)
    return make_plan(resolve(manifest, recipes), env={})


def test_basic_matrix_splits_by_arch_and_converts_once(tmp_path, recipes):
    plan = plan_of(tmp_path, BASIC, recipes)
    shards = plan_shards(plan)
    data = matrix(plan, shards)
    assert data["shards"] == ["convert-tf", "build-amd64", "build-arm64"]
    assert data["convert"]["include"] == [
        {
            "shard": "convert-tf",
            "runner": "amd64",
            "targets": "convert-tflite-fp32 convert-tflite-int8 convert-openvino-fp32 "
            "convert-openvino-int8",
            "variants": "cpu/tflite/fp32 arm/tflite/fp32 cpu/tflite/int8 arm/tflite/int8 "
            "cpu/openvino/fp32 arm/openvino/fp32 cpu/openvino/int8 arm/openvino/int8",
        }
    ]
    builds = data["build"]["include"]
    assert [(b["shard"], b["runner"], b["platform"]) for b in builds] == [
        ("build-amd64", "amd64", "linux/amd64"),
        ("build-arm64", "arm64", "linux/arm64"),
    ]
    # tflite is one multi-arch image: its amd64 half on one runner, its arm64 half on the other
    assert "serve-cpu-arm-tflite-fp32" in builds[0]["targets"].split()
    assert "serve-cpu-arm-tflite-fp32" in builds[1]["targets"].split()
    assert data["plan"] == shards.fingerprint and data["plan"].startswith("sha256:")


def test_accelerators_get_their_own_runner_labels_and_overrides_apply(tmp_path, recipes):
    plan = plan_of(tmp_path, GPU, recipes)
    shards = plan_shards(plan)
    labels = {(b.name, b.runner, b.platform) for b in shards.builds}
    assert labels == {
        ("build-amd64", "amd64", "linux/amd64"),
        ("build-arm64", "arm64", "linux/arm64"),
        ("build-gpu-amd64", "gpu", "linux/amd64"),
        ("build-jetson-arm64", "jetson", "linux/arm64"),
        ("build-alveo-amd64", "alveo", "linux/amd64"),
    }
    # the Vitis AI toolchain is a multi-GB image of its own: its conversions get their own shard
    assert {s.name for s in shards.converts} == {"convert-tf", "convert-vitis-ai"}
    renamed = plan_shards(plan, runners={"arm64": "ubuntu-24.04-arm", "gpu": "gpu-t4"})
    assert {(b.name, b.runner) for b in renamed.builds} >= {
        ("build-arm64", "ubuntu-24.04-arm"),
        ("build-gpu-amd64", "gpu-t4"),
    }
    assert renamed.fingerprint == shards.fingerprint  # labels only: records stay valid


def test_split_by_target_gives_one_image_per_build_shard(tmp_path, recipes):
    plan = plan_of(tmp_path, BASIC, recipes)
    shards = plan_shards(plan, split=Split.TARGET)
    assert all(len(b.serves) == 1 for b in shards.builds)
    assert len(shards.builds) == sum(len(s.platforms) for s in plan.serves)
    assert [c.name for c in shards.converts] == sorted(c.name for c in plan.converts)
    assert shards.fingerprint != plan_shards(plan).fingerprint  # another layout, other records


def test_conversion_address_is_the_artifact_tag_and_moves_with_the_plugins(tmp_path, recipes):
    plan = plan_of(tmp_path, BASIC, recipes)
    convert = plan.converts[1]  # tflite int8 reads the calibration plug-in
    address = conversion_address(plan, convert)
    ref = artifact_ref(plan, convert)
    assert ref == f"registry.example.com/team/demo-artifacts:{convert.name}-{address[7:]}"
    (tmp_path / "app" / "calibration.py").write_text("def samples():\n    yield {}\n")
    edited = replan(tmp_path / "tf2aif.yaml", recipes)
    assert conversion_address(edited, edited.converts[1]) != address
    (tmp_path / "app" / "calibration.py").write_text("def samples():\n    yield {'x': 1}\n")
    assert (
        plan_shards(replan(tmp_path / "tf2aif.yaml", recipes)).fingerprint
        != plan_shards(edited).fingerprint
    )


def test_unknown_shard_names_the_close_one(tmp_path, recipes):
    shards = plan_shards(plan_of(tmp_path, BASIC, recipes))
    with pytest.raises(PlanError, match=r"shard 'build-arm' is not in the plan \(did you mean"):
        find_shard(shards, "build-arm")


def test_ci_matrix_command_prints_json_and_github_output(tmp_path, capsys, monkeypatch):
    manifest = write_project(tmp_path, BASIC)
    out = tmp_path / "github-output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    assert main(["ci", "matrix", str(manifest), "--github-output"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["shards"] == ["convert-tf", "build-amd64", "build-arm64"]
    line = out.read_text()
    assert line.startswith("matrix=") and json.loads(line[7:]) == printed


def test_ci_matrix_rejects_a_bad_runner_flag(tmp_path, capsys):
    """A bad --runner is a usage error (exit 2) with its reason."""
    manifest = write_project(tmp_path, BASIC)
    for value, reason in (
        ("arm64", "expected KIND=LABEL"),
        ("arm=big", "unknown runner kind 'arm' (did you mean \"arm64\"?)"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(["ci", "matrix", str(manifest), "--runner", value])
        assert exit_.value.code == 2
        assert f"argument --runner: {reason}" in capsys.readouterr().err


# -- generated manifests ---------------------------------------------------------------------

PLATFORMS = ["cpu", "arm", "gpu", "agx", "alveo"]
RUNTIMES = ["tf", "tflite", "openvino", "onnxruntime", "tensorrt", "vitis-ai"]
PRECISIONS = ["fp32", "fp16", "int8"]
LABELS = st.sampled_from(["amd64", "arm64", "gpu", "jetson", "alveo", "big", "x.y"])


@st.composite
def manifests(draw):
    platforms = draw(st.lists(st.sampled_from(PLATFORMS), min_size=1, max_size=5, unique=True))
    runtimes = draw(st.lists(st.sampled_from(RUNTIMES), min_size=1, max_size=6, unique=True))
    precisions = draw(st.lists(st.sampled_from(PRECISIONS), min_size=1, max_size=3, unique=True))
    exclude = draw(
        st.lists(
            st.fixed_dictionaries(
                {"platform": st.sampled_from(platforms), "runtime": st.sampled_from(runtimes)}
            ),
            max_size=2,
        )
    )
    return textwrap.dedent(
        f"""\
        version: 1
        name: gen
        model: {{path: models/m}}
        calibration: {{module: app/calibration.py}}
        targets:
          platforms: {json.dumps(platforms)}
          runtimes: {json.dumps(runtimes)}
          precisions: {json.dumps(precisions)}
          exclude: {json.dumps(exclude)}
        registry: r.example.com/gen
        """
    )


@pytest.fixture(scope="module")
def plans(tmp_path_factory, recipes):
    """manifest text -> plan (or None when the matrix is empty): the project is written once,
    only the manifest changes, and each distinct manifest is planned once."""
    root = tmp_path_factory.mktemp("gen")
    write_project(root, BASIC)
    cache: dict[str, object] = {}

    def plan(text: str):
        if text not in cache:
            (root / "tf2aif.yaml").write_text(text)
            try:
                manifest, _ = load_manifest(root / "tf2aif.yaml")
                cache[text] = make_plan(resolve(manifest, recipes), env={})
            except (ManifestError, PlanError):
                cache[text] = None
        return cache[text]

    return plan


@pytest.mark.fuzz
@given(
    text=manifests(),
    split=st.sampled_from(list(Split)),
    runners=st.dictionaries(
        st.sampled_from(["amd64", "arm64", "gpu", "alveo"]), LABELS, max_size=2
    ),
)
def test_every_image_platform_and_conversion_lands_in_exactly_one_shard(
    plans, text, split, runners
):
    plan = plans(text)
    assume(plan is not None)
    shards = plan_shards(plan, split=split, runners=runners)
    cells = [(s, b.platform) for b in shards.builds for s in b.serves]
    wanted = [(s.name, p) for s in plan.serves for p in s.platforms]
    assert sorted(cells) == sorted(wanted)  # each (image, platform) once, nothing else
    converts = [c for shard in shards.converts for c in shard.converts]
    assert sorted(converts) == sorted({s.convert for s in plan.serves})
    serves = {s.name: s for s in plan.serves}
    for build in shards.builds:
        assert build.converts == tuple(dict.fromkeys(serves[s].convert for s in build.serves))
        if split is Split.TARGET:
            assert len(build.serves) == 1
        kind = build.name.removeprefix("build-").split("-")[0] if split is Split.PLATFORM else ""
        if kind:
            assert kind in ("amd64", "arm64", "gpu", "jetson", "alveo")
            assert build.runner == runners.get(kind, kind)
            if kind in ("amd64", "arm64"):
                assert kind == arch_of(build.platform)
    names = shards.names()
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", n) for n in names)
    again = plan_shards(plan, split=split, runners=runners)
    assert again == shards
    assert plan_shards(plan, split=split).fingerprint == shards.fingerprint
    assert json.dumps(matrix(plan, again)) == json.dumps(matrix(plan, shards))

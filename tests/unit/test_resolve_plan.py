"""resolve and plan: data in, structure out."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tf2aif.errors import ManifestError, PlanError, RecipeError
from tf2aif.manifest import load_manifest
from tf2aif.plan import local_convert_spec, make_plan
from tf2aif.recipes import load_recipes
from tf2aif.resolve import resolve
from tf2aif.resources import data_dir

from projects import BASIC, write_project

FULL = """\
version: 1
name: full
model: {path: models/m}
calibration: {module: app/calibration.py}
targets:
  platforms: [cpu, arm, gpu, agx, alveo]
  runtimes: [tf, tflite, openvino, onnxruntime, tensorrt, vitis-ai]
  precisions: [fp32, fp16, int8]
  exclude: [{platform: arm, runtime: openvino}]
  include: [{platform: arm, runtime: openvino, precision: int8}]
registry: r.example.com/ml
"""


@pytest.fixture(scope="module")
def recipes():
    return load_recipes(env={})


def plan_of(tmp_path, text, recipes, **kwargs):
    manifest, _ = load_manifest(write_project(tmp_path, text))
    return make_plan(resolve(manifest, recipes, **kwargs), env={})


def test_matrix_is_product_minus_exclude_plus_include(tmp_path, recipes):
    plan = plan_of(tmp_path, FULL, recipes)
    ids = {v.id for v in plan.variants}
    assert "arm/openvino/int8" in ids  # re-added by include
    assert "arm/openvino/fp32" not in ids
    skipped = {s.id: s.reason for s in plan.skipped}
    assert skipped["arm/openvino/fp32"] == "excluded by targets.exclude[0]"
    assert "arm/openvino/int8" not in skipped
    assert skipped["arm/tf/fp32"] == "no recipe serves tf on arm (tf runs on: cpu, gpu)"
    assert (
        skipped["alveo/vitis-ai/fp16"] == "the DPU executes int8 only; quantize with precision int8"
    )
    assert skipped["cpu/tf/int8"] == "recipe tf supports fp32, not int8"
    assert len(ids) + len(skipped) == 5 * 6 * 3


def test_conversions_are_shared_across_platforms(tmp_path, recipes):
    plan = plan_of(tmp_path, FULL, recipes)
    converts = {c.name: c.variants for c in plan.converts}
    assert converts["convert-tensorrt-fp16"] == ("gpu/tensorrt/fp16", "agx/tensorrt/fp16")
    assert converts["convert-onnxruntime-int8"] == (
        "cpu/onnxruntime/int8",
        "arm/onnxruntime/int8",
        "gpu/onnxruntime/int8",
    )
    # one conversion per (runtime, precision) here: no duplicates, no per-arch conversions
    assert len(converts) == len({(c.runtime, c.precision) for c in plan.converts})


def test_shared_runtime_image_becomes_one_multi_arch_image(tmp_path, recipes):
    plan = plan_of(tmp_path, FULL, recipes)
    serves = {s.name: s for s in plan.serves}
    tflite = serves["serve-cpu-arm-tflite-fp32"]
    assert tflite.platforms == ("linux/amd64", "linux/arm64")
    assert tflite.variants == ("cpu/tflite/fp32", "arm/tflite/fp32")
    # onnxruntime on gpu uses a CUDA base, so it is its own image
    assert serves["serve-gpu-onnxruntime-fp32"].platforms == ("linux/amd64",)
    assert serves["serve-agx-tensorrt-int8"].platforms == ("linux/arm64",)
    bases = {b.name: b for b in plan.bases}
    assert set(bases[tflite.base].platforms) >= set(tflite.platforms)
    assert bases["base-convert-tf"].platforms == ()  # toolchains run on the build platform


def test_names_and_tags_follow_buildx_rules_and_are_deterministic(tmp_path, recipes):
    plan = plan_of(tmp_path, FULL, recipes)
    again = plan_of(tmp_path, FULL, recipes)
    assert [s.tags for s in plan.serves] == [s.tags for s in again.serves]
    for name in plan.target_names():
        assert re.fullmatch(r"[a-zA-Z0-9_-]+", name)
    serve = plan.serves[0]
    assert serve.tags[1] == "r.example.com/ml/full:tf-fp32-cpu"
    assert re.fullmatch(r"r\.example\.com/ml/full:tf-fp32-cpu-[0-9a-f]{12}", serve.tags[0])


def test_content_tag_changes_with_the_model(tmp_path, recipes):
    file = write_project(tmp_path, FULL)
    before = make_plan(resolve(load_manifest(file)[0], recipes), env={}).serves[0].tags
    (tmp_path / "models" / "m" / "saved_model.pb").write_bytes(b"retrained")
    after = make_plan(resolve(load_manifest(file)[0], recipes), env={}).serves[0].tags
    assert before[0] != after[0]
    assert before[1] == after[1]  # the human tag stays; it moves to the new build


def test_groups(tmp_path, recipes):
    plan = plan_of(tmp_path, BASIC, recipes)
    assert set(plan.groups) == {"default", "convert", "cpu", "arm", "tflite", "openvino"}
    assert plan.groups["arm"] == (
        "serve-cpu-arm-tflite-fp32",
        "serve-cpu-arm-tflite-int8",
        "serve-arm-openvino-fp32",
        "serve-arm-openvino-int8",
    )


def test_build_and_local_specs(tmp_path, recipes):
    plan = plan_of(tmp_path, BASIC, recipes)
    convert = next(c for c in plan.converts if c.name == "convert-tflite-int8")
    assert dict(convert.contexts) == {"model": "models/m", "plugins": "app"}
    assert convert.spec.model == "model"
    assert convert.spec.processing == "plugins/processing.py"
    assert convert.spec.calibration.module == "plugins/calibration.py"
    assert convert.spec.calibration.count == 50
    local = local_convert_spec(plan, "arm/tflite/int8")
    assert local.model == "models/m" and local.processing == "app/processing.py"
    assert json.loads(local.to_json())["thresholds"]["atol"] == 0.01
    with pytest.raises(PlanError, match="variant 'gpu/tflite/int8' is not in the plan"):
        local_convert_spec(plan, "gpu/tflite/int8")


def test_keras_model_context_is_its_folder(tmp_path, recipes):
    manifest_text = BASIC.replace("models/m}", "models/m.keras}")
    manifest, _ = load_manifest(
        write_project(tmp_path, manifest_text, model="models/m.keras", keras=True)
    )
    plan = make_plan(resolve(manifest, recipes), env={})
    assert plan.converts[0].contexts["model"] == "models"
    assert plan.converts[0].spec.model == "model/m.keras"


def test_vendor_map_replaces_vendor_images(tmp_path, recipes):
    plan = plan_of(
        tmp_path,
        BASIC,
        recipes,
        vendor_map={"python:3.11-slim-bookworm": "127.0.0.1:5000/stand-in/python:3.11"},
    )
    vendors = {b.name: b.vendor for b in plan.bases}
    assert vendors["base-serve-tflite"] == "127.0.0.1:5000/stand-in/python:3.11"
    assert vendors["base-convert-tf"] == "tensorflow/tensorflow:2.21.0"


def test_fidelity_overrides_apply_per_cell(tmp_path, recipes):
    text = BASIC.replace(
        "fidelity: {atol: 0.01, min_top1_agreement: 0.99}",
        "fidelity: {atol: 0.01, min_top1_agreement: 0.99, overrides: [{match: {precision: int8}, atol: 0.2}]}",
    )
    plan = plan_of(tmp_path, text, recipes)
    thresholds = {c.name: c.spec.thresholds for c in plan.converts}
    assert thresholds["convert-tflite-int8"].atol == 0.2
    assert thresholds["convert-tflite-fp32"].atol == 0.01
    assert thresholds["convert-tflite-int8"].min_top1_agreement == 0.99


def test_source_labels_come_from_ci_environment(tmp_path, recipes):
    manifest, _ = load_manifest(write_project(tmp_path, BASIC))
    env = {"GITHUB_REPOSITORY": "team/model", "GITHUB_SHA": "abc123"}
    labels = make_plan(resolve(manifest, recipes), env=env).serves[0].labels
    assert labels["org.opencontainers.image.source"] == "https://github.com/team/model"
    assert labels["org.opencontainers.image.revision"] == "abc123"
    assert labels["io.tf2aif.variants"] == "cpu/tflite/fp32,arm/tflite/fp32"


def test_unknown_names_are_all_reported(tmp_path, recipes):
    text = BASIC.replace("[cpu, arm]", "[cpu, amr, tpu]")
    manifest, _ = load_manifest(write_project(tmp_path, text))
    with pytest.raises(ManifestError) as info:
        resolve(manifest, recipes)
    assert len(info.value.issues) == 2
    assert 'did you mean "arm"' in str(info.value)


def test_plugins_next_to_the_manifest_give_a_warning(tmp_path):
    text = BASIC.replace("app/processing.py", "processing.py")
    file = write_project(tmp_path, text)
    (tmp_path / "processing.py").write_text((tmp_path / "app" / "processing.py").read_text())
    _, warnings = load_manifest(file)
    assert len(warnings) == 1 and "move them into a subfolder" in warnings[0]
    assert load_manifest(write_project(tmp_path / "ok", BASIC))[1] == ()


@pytest.fixture
def base_images_copy(tmp_path, monkeypatch):
    """A writable copy of base_images/ that planning reads instead of the shipped one."""
    copy = tmp_path / "data" / "base_images"
    shutil.copytree(data_dir("base_images"), copy)

    def patched(name):
        return copy if name == "base_images" else data_dir(name)

    monkeypatch.setattr("tf2aif.recipes.data_dir", patched)
    monkeypatch.setattr("tf2aif.bake.data_dir", patched)
    return copy


def test_a_change_to_the_shared_install_script_changes_every_content_tag(
    tmp_path, base_images_copy, recipes
):
    before = plan_of(tmp_path / "a", FULL, recipes)
    assert [s.tags for s in before.serves] == [
        s.tags for s in plan_of(tmp_path / "b", FULL, recipes).serves
    ]
    install = base_images_copy / "common" / "install.sh"
    install.write_text(install.read_text() + "# changed\n")
    after = plan_of(tmp_path / "c", FULL, recipes)
    for old, new in zip(before.serves, after.serves, strict=True):
        assert old.tags[0] != new.tags[0]  # content tag: rebuilt on the new install.sh
        assert old.tags[1:] == new.tags[1:]


def test_a_change_to_one_runtime_base_folder_moves_only_the_images_built_on_it(
    tmp_path, base_images_copy, recipes
):
    before = plan_of(tmp_path / "a", FULL, recipes)
    (base_images_copy / "serve-tflite" / "requirements.txt").write_text("numpy==2.5.0\n")
    after = plan_of(tmp_path / "b", FULL, recipes)
    bases = {b.name: b.folder for b in before.bases}
    moved = {o.name for o, n in zip(before.serves, after.serves, strict=True) if o.tags != n.tags}
    assert moved == {s.name for s in before.serves if bases[s.base] == "serve-tflite"}
    assert moved  # FULL serves tflite


def test_a_change_to_the_converter_base_moves_the_images_it_converts_for(
    tmp_path, base_images_copy, recipes
):
    before = plan_of(tmp_path / "a", FULL, recipes)
    (base_images_copy / "convert-tf" / "requirements.txt").write_text("tensorflow==2.99.0\n")
    after = plan_of(tmp_path / "b", FULL, recipes)
    converter = {c.name: c.base for c in before.converts}
    folders = {b.name: b.folder for b in before.bases}
    moved = {o.name for o, n in zip(before.serves, after.serves, strict=True) if o.tags != n.tags}
    assert moved == {s.name for s in before.serves if folders[converter[s.convert]] == "convert-tf"}
    assert len(moved) < len(before.serves)  # vitis-ai converts on its own toolchain


def test_a_readme_the_build_does_not_read_moves_no_tag(tmp_path, base_images_copy, recipes):
    before = plan_of(tmp_path / "a", FULL, recipes)
    for readme in base_images_copy.glob("*/README.md"):
        readme.write_text("edited\n")
    after = plan_of(tmp_path / "b", FULL, recipes)
    assert [s.tags for s in before.serves] == [s.tags for s in after.serves]


def test_a_recipe_cannot_name_the_common_folder_as_its_base(tmp_path):
    (tmp_path / "extra" / "shared").mkdir(parents=True)
    (tmp_path / "extra" / "shared" / "recipe.yaml").write_text(
        "runtime: shared\nprecisions: [fp32]\n"
        'converter: {backend: tflite, base: convert-tf, vendor: "tensorflow/tensorflow:2.21.0"}\n'
        'platforms:\n  cpu: {base: common, vendor: "python:3.11-slim-bookworm"}\n'
    )
    with pytest.raises(RecipeError) as caught:
        load_recipes(env={"TF2AIF_RECIPE_PATH": str(tmp_path / "extra")})
    assert str(caught.value) == (
        "invalid recipes:\n"
        "  recipe 'shared': base_images/common is shared by every base image, not a base"
    )

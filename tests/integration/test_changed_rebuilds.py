"""`tf2aif bake --changed --push` on real buildx and the local registry: content tags come from
the bake graph, so an edit to a converter toolchain folder rebuilds every image converted on it,
an edit to one runtime base only the images built on it, and no edit (or an edit to a file no
build reads) rebuilds nothing.

The run uses a copy of the checkout (builder/, base_images/, recipes/, schema/) so the tests
can edit base folders, and a two-image cut of the demo (tflite and openvino fp32 on amd64) on
the local stand-ins.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from .conftest import REGISTRY, REPO, demo_project, tf2aif

pytestmark = pytest.mark.docker

REPOSITORY_ROOT = f"{REGISTRY}/tf2aif-it/changed-{uuid.uuid4().hex[:8]}"
IMAGES = ("serve-cpu-tflite-fp32", "serve-cpu-openvino-fp32")
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}
UNCHANGED = "unchanged: "


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of the checkout whose base folders the tests edit."""
    root = tmp_path_factory.mktemp("checkout")
    ignore = shutil.ignore_patterns("__pycache__", "_data")
    for folder in ("builder", "base_images", "recipes", "schema"):
        shutil.copytree(REPO / folder, root / folder, ignore=ignore)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory, digits_model) -> Path:
    root = demo_project(tmp_path_factory.mktemp("changed"), digits_model, REPOSITORY_ROOT)
    manifest = root / "tf2aif.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["targets"] = {
        "platforms": ["cpu"],
        "runtimes": ["tflite", "openvino"],
        "precisions": ["fp32"],
    }
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def bake_changed(checkout: Path, project: Path, vendor_map: Path) -> tuple[dict, str]:
    """`tf2aif bake --changed --push` with the checkout copy's code and data; returns
    (target -> its record entry, output)."""
    proc, _ = tf2aif(
        "bake",
        str(project / "tf2aif.yaml"),
        "--vendor-map",
        str(vendor_map),
        "--changed",
        "--push",
        env={"PYTHONPATH": str(checkout / "builder"), **EPOCH},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    record = json.loads((project / "tf2aif-record.json").read_text())
    return {i["target"]: i for i in record["images"]}, output


def rebuilt(images: dict) -> set[str]:
    return {t for t, i in images.items() if not i["reason"].startswith(UNCHANGED)}


def registry_tags(repository: str) -> set[str]:
    name = repository.split("/", 1)[1]
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/{name}/tags/list", timeout=10) as r:
            return set(json.load(r).get("tags") or ())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return set()
        raise


def append(file: Path, text: str) -> None:
    file.write_text(file.read_text() + text)


@pytest.fixture(scope="module")
def first(checkout, project, stand_in_map) -> dict:
    images, _ = bake_changed(checkout, project, stand_in_map)
    assert set(images) == set(IMAGES)
    assert rebuilt(images) == set(IMAGES)  # nothing published yet under these content tags
    return images


def content_tag(image: dict) -> str:
    return image["tags"][0]


def test_no_edit_rebuilds_nothing(checkout, project, stand_in_map, first):
    images, output = bake_changed(checkout, project, stand_in_map)
    assert rebuilt(images) == set()
    assert "load local bake definitions" not in output  # buildx was not even started
    for target in IMAGES:
        assert content_tag(images[target]) == content_tag(first[target])
        assert images[target]["digest"] == first[target]["digest"]  # the published index


def test_a_file_no_build_reads_rebuilds_nothing(checkout, project, stand_in_map, first):
    append(checkout / "base_images" / "convert-tf" / "README.md", "\nA note.\n")
    (project / "NOTES.md").write_text("beside the manifest, in no build context\n")
    images, _ = bake_changed(checkout, project, stand_in_map)
    assert rebuilt(images) == set()


def test_a_converter_base_edit_rebuilds_every_image_it_converts_for(
    checkout, project, stand_in_map, first
):
    # a real toolchain change: every conversion runs again on the new converter base
    append(checkout / "base_images" / "convert-tf" / "Dockerfile", "ENV TF2AIF_TEST_PIN=1\n")
    images, output = bake_changed(checkout, project, stand_in_map)
    assert rebuilt(images) == set(IMAGES)
    repository = first[IMAGES[0]]["image"]
    published = registry_tags(repository)
    for target in IMAGES:
        new = content_tag(images[target])
        assert new != content_tag(first[target])
        assert new.rpartition(":")[2] in published
        assert images[target]["status"] == "success" and images[target]["digest"]
    again, _ = bake_changed(checkout, project, stand_in_map)
    assert rebuilt(again) == set()  # and now that is what is published


def test_a_runtime_base_edit_rebuilds_only_the_images_built_on_it(
    checkout, project, stand_in_map, first
):
    before, _ = bake_changed(checkout, project, stand_in_map)
    append(checkout / "base_images" / "serve-openvino" / "Dockerfile", "ENV TF2AIF_TEST_PIN=1\n")
    images, _ = bake_changed(checkout, project, stand_in_map)
    assert rebuilt(images) == {"serve-cpu-openvino-fp32"}
    tflite = "serve-cpu-tflite-fp32"
    assert content_tag(images[tflite]) == content_tag(before[tflite])

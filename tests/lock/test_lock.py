"""Lock data, input collection, pins and diffs (no Docker, no registry)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from tf2aif import lock
from tf2aif.lock import (
    Lock,
    LockedImage,
    LockError,
    build_lock,
    check_lock,
    diff_locks,
    dump_lock,
    load_lock,
    manifest_inputs,
    requirement_pins,
)

PINNED = "registry.example/vendor/base:1@sha256:" + "b" * 64


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def no_registry(ref: str):
    raise AssertionError(f"{ref} must not be resolved: it is pinned already")


def inputs_of(manifest: Path, **kwargs):
    return manifest_inputs(
        manifest, recipes_dir=None, base_images_dir=manifest.parent / "base_images", **kwargs
    )


def test_inputs_cover_manifest_model_plugin_folder_and_base_images(project: Path) -> None:
    inputs = inputs_of(project)
    assert inputs.manifest == "tf2aif.yaml"
    assert list(inputs.files) == [
        "app/helpers.py",  # a sibling the plug-in imports: the whole folder is an input
        "app/processing.py",
        "base_images/serve-tiny/Dockerfile",
        "base_images/serve-tiny/requirements.txt",
        "models/m/saved_model.pb",
        "models/m/variables/variables.index",
        "tf2aif.yaml",
    ]
    assert inputs.images == ("example.org/vendor/python:3.11",)
    assert inputs.tools["serve-tiny"].packages == {
        "numpy": '2.4.6 (python_version >= "3.11"), 2.2.6 (python_version < "3.11")',
        "uvicorn": "0.38.0",
    }
    assert inputs.tools["serve-tiny"].source == "base_images/serve-tiny/requirements.txt"


def test_shipped_folders_outside_the_project_are_named_by_folder(tmp_path: Path, make_project):
    manifest = make_project(tmp_path / "p")
    shipped = tmp_path / "site" / "recipes" / "tflite"
    shipped.mkdir(parents=True)
    (shipped / "recipe.yaml").write_text(
        "platforms:\n  cpu: {base: serve-tflite, vendor: 'python:3.11-slim-bookworm'}\n"
        "  arm: {base: serve-tflite, vendor: 'python:3.11-slim-bookworm'}\n"
        "convert: {base: convert-tf, vendor: 'tensorflow/tensorflow:2.21.0'}\n"
    )
    inputs = manifest_inputs(manifest, recipes_dir=shipped.parent, base_images_dir=None)
    assert "tf2aif:recipes/tflite/recipe.yaml" in inputs.files
    assert inputs.images == ("python:3.11-slim-bookworm", "tensorflow/tensorflow:2.21.0")


def test_missing_model_is_an_error_that_says_what_to_do(project: Path) -> None:
    project.write_text(project.read_text().replace("models/m", "models/absent"))
    with pytest.raises(
        LockError, match=r"model.path 'models/absent' does not exist; train or fetch"
    ):
        inputs_of(project)


def test_requirement_pins(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(
        "-r other.txt\nTensorflow_CPU==2.21.0\nfoo[bar]===1.0 # exact\nbaz>=2\n# qux==1\n"
    )
    assert requirement_pins(path) == {"foo": "1.0", "tensorflow-cpu": "2.21.0"}


def test_lock_is_stable_and_round_trips(project: Path) -> None:
    inputs = inputs_of(project, vendor_map={"example.org/vendor/python:3.11": PINNED})
    first = build_lock(inputs, no_registry)
    text = dump_lock(first)
    assert dump_lock(build_lock(inputs, no_registry)) == text  # byte-identical
    path = project.parent / "tf2aif.lock"
    path.write_text(text)
    assert load_lock(path) == first
    data = yaml.safe_load(text)
    assert list(data) == ["format", "manifest", "files", "images", "tools"]
    assert data["files"]["models/m/saved_model.pb"] == sha(b"graph-v1")
    assert data["images"] == {
        "example.org/vendor/python:3.11": {
            "source": PINNED,
            "digest": "sha256:" + "b" * 64,
            "platforms": [],
        }
    }
    assert text.startswith("# Written by `tf2aif lock`")


def test_vendor_map_pins_each_reference() -> None:
    locked = Lock(
        manifest="tf2aif.yaml",
        files={},
        images={
            "python:3.11-slim-bookworm": LockedImage(
                source="127.0.0.1:5000/stand-in/python:3.11-bookworm", digest="sha256:" + "c" * 64
            ),
            "tensorflow/tensorflow:2.21.0": LockedImage(
                source="tensorflow/tensorflow:2.21.0", digest="sha256:" + "d" * 64
            ),
        },
        tools={},
    )
    assert locked.vendor_map() == {
        "python:3.11-slim-bookworm": "127.0.0.1:5000/stand-in/python:3.11-bookworm@sha256:"
        + "c" * 64,
        "tensorflow/tensorflow:2.21.0": "tensorflow/tensorflow:2.21.0@sha256:" + "d" * 64,
    }


def test_check_names_every_changed_added_and_removed_file(project: Path) -> None:
    vendor_map = {"example.org/vendor/python:3.11": PINNED}
    old = build_lock(inputs_of(project, vendor_map=vendor_map), no_registry)
    root = project.parent
    (root / "models" / "m" / "saved_model.pb").write_bytes(b"graph-v2")
    (root / "app" / "extra.py").write_text("X = 1\n")
    (root / "models" / "m" / "variables" / "variables.index").unlink()
    (root / "base_images" / "serve-tiny" / "requirements.txt").write_text("numpy==2.5.0\n")
    changes = check_lock(old, inputs_of(project, vendor_map=vendor_map), None)
    assert changes == (
        "added    app/extra.py",
        "changed  base_images/serve-tiny/requirements.txt",
        "changed  models/m/saved_model.pb",
        "removed  models/m/variables/variables.index",
        'tool     serve-tiny: numpy 2.4.6 (python_version >= "3.11"), 2.2.6 (python_version < "3.11") -> 2.5.0',
        "tool     serve-tiny: uvicorn 0.38.0 -> absent",
    )


def test_offline_check_sees_a_changed_image_source_and_an_unlocked_image(project: Path) -> None:
    old = build_lock(
        inputs_of(project, vendor_map={"example.org/vendor/python:3.11": PINNED}), no_registry
    )
    assert (
        check_lock(
            old, inputs_of(project, vendor_map={"example.org/vendor/python:3.11": PINNED}), None
        )
        == ()
    )
    assert check_lock(old, inputs_of(project), None) == (
        "image    example.org/vendor/python:3.11 now comes from example.org/vendor/python:3.11 "
        f"(locked {PINNED})",
    )
    dockerfile = project.parent / "base_images" / "serve-tiny" / "Dockerfile"
    dockerfile.write_text("ARG VENDOR_IMAGE=example.org/other:2\nFROM ${VENDOR_IMAGE}\n")
    assert check_lock(old, inputs_of(project), None) == (
        "changed  base_images/serve-tiny/Dockerfile",
        "image    example.org/other:2 is not locked",
        "image    example.org/vendor/python:3.11 is no longer used",
    )


def test_diff_reports_a_moved_digest() -> None:
    before = Lock(
        manifest="m", files={}, tools={},
        images={"r:1": LockedImage(source="r:1", digest="sha256:" + "1" * 64)},
    )  # fmt: skip
    after = Lock(
        manifest="m", files={}, tools={},
        images={"r:1": LockedImage(source="r:1", digest="sha256:" + "2" * 64)},
    )  # fmt: skip
    assert diff_locks(before, after) == (
        f"image    r:1 now resolves to sha256:{'2' * 64} (locked sha256:{'1' * 64})",
    )


def test_unresolvable_images_are_reported_together(project: Path) -> None:
    def unreachable(ref: str):
        raise LockError("dial tcp: lookup registry-1.docker.io: no such host")

    base = project.parent / "base_images"
    (base / "second").mkdir()
    (base / "second" / "Dockerfile").write_text("ARG VENDOR_IMAGE=python:3.11\nFROM x\n")
    with pytest.raises(LockError) as exc:
        build_lock(inputs_of(project), unreachable)
    assert str(exc.value) == (
        "cannot resolve 2 image reference(s) to a digest:\n"
        "  example.org/vendor/python:3.11: dial tcp: lookup registry-1.docker.io: no such host\n"
        "  python:3.11: dial tcp: lookup registry-1.docker.io: no such host\n"
        "point unreachable vendor images at a mirror with --vendor-map FILE"
    )


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("python:3.11-slim", ("registry-1.docker.io", "library/python", "3.11-slim")),
        ("tensorflow/tensorflow", ("registry-1.docker.io", "tensorflow/tensorflow", "latest")),
        ("127.0.0.1:5000/a/b:t", ("127.0.0.1:5000", "a/b", "t")),
        ("localhost/x@sha256:" + "e" * 64, ("localhost", "x", "sha256:" + "e" * 64)),
        ("nvcr.io/nvidia/tensorrt:24.12-py3", ("nvcr.io", "nvidia/tensorrt", "24.12-py3")),
    ],
)
def test_reference_parsing(ref: str, expected: tuple[str, str, str]) -> None:
    assert lock._split_ref(ref) == expected


def test_argv_builders() -> None:
    assert lock.imagetools_argv("r/x:1") == [
        "docker", "buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}", "r/x:1",
    ]  # fmt: skip
    assert lock.pip_list_argv("r/base:1") == [
        "docker", "run", "--rm", "--network", "none", "--entrypoint",
        "/opt/tf2aif/venv/bin/python", "r/base:1",
        "-m", "pip", "list", "--format", "json", "--disable-pip-version-check",
    ]  # fmt: skip


def test_newer_lock_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tf2aif.lock"
    path.write_text("format: 9\nmanifest: tf2aif.yaml\n")
    with pytest.raises(LockError, match="lock format 9 is newer than this tf2aif reads"):
        load_lock(path)

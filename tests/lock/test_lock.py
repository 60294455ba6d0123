"""Lock data, inputs from the plan, requirement pins and diffs (no Docker, no registry)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from tf2aif.errors import LockError, Tf2aifError
from tf2aif.lock import resolvers
from tf2aif.lock.inputs import plan_inputs, requirement_pins
from tf2aif.lock.lockfile import (
    Lock,
    LockedImage,
    LockInputs,
    ToolSet,
    build_lock,
    check_lock,
    diff_locks,
    dump_lock,
    load_lock,
)
from tf2aif.pipeline.imagetools import inspect_manifest_argv

DIGEST = "sha256:" + "b" * 64
PINNED = {
    "python:3.11-slim-bookworm": f"mirror.example/python:3.11@{DIGEST}",
    "tensorflow/tensorflow:2.21.0": f"mirror.example/tensorflow:2.21.0@{DIGEST}",
}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def no_registry(ref: str):
    raise AssertionError(f"{ref} must not be resolved: the vendor map pins it already")


def test_inputs_are_what_the_plan_builds_from(project: Path) -> None:
    inputs = plan_inputs(project, env={}, vendor_map=PINNED)
    assert inputs.manifest == "tf2aif.yaml"
    own = [name for name in inputs.files if not name.startswith("tf2aif:")]
    assert own == [
        "app/helpers.py",  # a sibling the plug-in imports: the plug-in folder is the context
        "app/processing.py",
        "models/m/saved_model.pb",
        "models/m/variables/variables.index",
        "tf2aif.yaml",
    ]
    shipped = [name for name in inputs.files if name.startswith("tf2aif:")]
    assert "tf2aif:recipes/platforms.yaml" in shipped
    assert "tf2aif:recipes/tflite/recipe.yaml" in shipped
    assert not any(name.startswith("tf2aif:recipes/openvino/") for name in shipped)
    bases = {name.split("/")[1] for name in shipped if name.startswith("tf2aif:base_images/")}
    # only the folders the plan uses, and the common folder every base copies install.sh from
    assert bases == {"common", "convert-tf", "serve-tflite"}
    assert "tf2aif:base_images/serve-tflite/Dockerfile" in shipped
    assert "tf2aif:base_images/common/install.sh" in shipped
    assert inputs.images == ("python:3.11-slim-bookworm", "tensorflow/tensorflow:2.21.0")
    assert sorted(inputs.tools) == ["convert-tf", "serve-tflite"]
    assert inputs.tools["convert-tf"].packages["tensorflow"] == "2.21.0"
    assert inputs.tools["convert-tf"].source == "tf2aif:base_images/convert-tf/requirements.txt"


def test_a_model_in_the_manifest_folder_leaves_out_build_outputs(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    root.mkdir()
    (root / "digits.keras").write_bytes(b"PK keras")
    (root / "tf2aif.yaml").write_text(
        "version: 1\nname: flat\nmodel: {path: digits.keras}\n"
        "targets: {platforms: [cpu], runtimes: [tflite], precisions: [fp32]}\n"
    )
    (root / ".tf2aif").mkdir()
    (root / ".tf2aif" / "docker-bake.json").write_text("{}")
    (root / "tf2aif.lock").write_text("format: 1\n")
    (root / "tf2aif-record.json").write_text("{}")
    inputs = plan_inputs(root / "tf2aif.yaml", env={})
    assert [n for n in inputs.files if not n.startswith("tf2aif:")] == [
        "digits.keras",
        "tf2aif.yaml",
    ]


def test_requirement_pins(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(
        "-r other.txt\nTensorflow_CPU==2.21.0\nfoo[bar]===1.0 # exact\nbaz>=2\n# qux==1\n"
        'numpy==2.4.6 ; python_version >= "3.11"  # import: numpy\n'
        'numpy==2.2.6 ; python_version < "3.11"  # import: numpy\n'
    )
    assert requirement_pins(path) == {
        "foo": "1.0",
        "numpy": '2.4.6 (python_version >= "3.11"), 2.2.6 (python_version < "3.11")',
        "tensorflow-cpu": "2.21.0",
    }


def test_lock_is_stable_and_round_trips(project: Path) -> None:
    inputs = plan_inputs(project, env={}, vendor_map=PINNED)
    first = build_lock(inputs, no_registry)
    text = dump_lock(first)
    assert (
        dump_lock(build_lock(plan_inputs(project, env={}, vendor_map=PINNED), no_registry)) == text
    )
    path = project.parent / "tf2aif.lock"
    path.write_text(text)
    assert load_lock(path) == first
    data = yaml.safe_load(text)
    assert list(data) == ["format", "manifest", "files", "images", "tools"]
    assert data["files"]["models/m/saved_model.pb"] == sha(b"graph-v1")
    assert data["images"]["python:3.11-slim-bookworm"] == {
        "source": PINNED["python:3.11-slim-bookworm"],
        "digest": DIGEST,
        "platforms": [],
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


def test_check_names_changed_added_and_removed_files(project: Path) -> None:
    old = build_lock(plan_inputs(project, env={}, vendor_map=PINNED), no_registry)
    root = project.parent
    (root / "models" / "m" / "saved_model.pb").write_bytes(b"graph-v2")
    (root / "app" / "extra.py").write_text("X = 1\n")
    (root / "models" / "m" / "variables" / "variables.index").unlink()
    assert check_lock(old, plan_inputs(project, env={}, vendor_map=PINNED), None) == (
        "added    app/extra.py",
        "changed  models/m/saved_model.pb",
        "removed  models/m/variables/variables.index",
    )


def test_check_sees_a_changed_base_image_folder_and_its_pins(tmp_path: Path) -> None:
    folder = tmp_path / "base_images" / "serve-x"
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_text("ARG VENDOR_IMAGE=r/x:1\nFROM ${VENDOR_IMAGE}\n")
    (folder / "requirements.txt").write_text("numpy==2.4.6\nuvicorn==0.38.0\n")

    def inputs() -> LockInputs:
        req = folder / "requirements.txt"
        return LockInputs(
            manifest="tf2aif.yaml",
            files={f"base_images/serve-x/{p.name}": p for p in folder.iterdir()},
            images=("r/x:1",),
            vendor_map={"r/x:1": f"r/x:1@{DIGEST}"},
            tools={"serve-x": ToolSet(source="r", packages=requirement_pins(req))},
        )

    old = build_lock(inputs(), no_registry)
    (folder / "requirements.txt").write_text("numpy==2.5.0\n")
    assert check_lock(old, inputs(), None) == (
        "changed  base_images/serve-x/requirements.txt",
        "tool     serve-x: numpy 2.4.6 -> 2.5.0",
        "tool     serve-x: uvicorn 0.38.0 -> absent",
    )


def test_check_sees_a_changed_common_install_script(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every base build copies base_images/common/install.sh: the lock names it once, and a
    change to it is a change of the build's inputs."""
    from tf2aif import resources
    from tf2aif.pipeline import recipes

    shipped = resources.data_dir
    copy = tmp_path / "data" / "base_images"
    shutil.copytree(shipped("base_images"), copy)

    def data_dir(name: str) -> Path:
        return copy if name == "base_images" else shipped(name)

    monkeypatch.setattr(resources, "data_dir", data_dir)
    monkeypatch.setattr(recipes, "data_dir", data_dir)
    old = build_lock(plan_inputs(project, env={}, vendor_map=PINNED), no_registry)
    assert old.files["tf2aif:base_images/common/install.sh"] == sha(
        (copy / "common" / "install.sh").read_bytes()
    )
    install = copy / "common" / "install.sh"
    install.write_text(install.read_text() + "# changed\n")
    assert check_lock(old, plan_inputs(project, env={}, vendor_map=PINNED), None) == (
        "changed  tf2aif:base_images/common/install.sh",
    )


def test_offline_check_sees_changed_image_sources(project: Path) -> None:
    old = build_lock(plan_inputs(project, env={}, vendor_map=PINNED), no_registry)
    assert check_lock(old, plan_inputs(project, env={}, vendor_map=PINNED), None) == ()
    moved = dict(PINNED, **{"python:3.11-slim-bookworm": "other.example/python:3.11"})
    assert check_lock(old, plan_inputs(project, env={}, vendor_map=moved), None) == (
        "image    python:3.11-slim-bookworm now comes from other.example/python:3.11 "
        f"(locked {PINNED['python:3.11-slim-bookworm']})",
    )


def test_a_new_runtime_adds_an_unlocked_image(project: Path) -> None:
    old = build_lock(plan_inputs(project, env={}, vendor_map=PINNED), no_registry)
    project.write_text(
        project.read_text().replace("runtimes: [tflite]", "runtimes: [tflite, openvino]")
    )
    changes = check_lock(old, plan_inputs(project, env={}, vendor_map=PINNED), None)
    assert "image    openvino/ubuntu22_runtime:2025.3.0 is not locked" in changes
    assert "changed  tf2aif.yaml" in changes
    assert "added    tf2aif:recipes/openvino/recipe.yaml" in changes
    assert any(line.startswith("added    tf2aif:base_images/serve-openvino/") for line in changes)


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

    with pytest.raises(LockError) as exc:
        build_lock(plan_inputs(project, env={}), unreachable)
    assert str(exc.value) == (
        "cannot resolve 2 image reference(s) to a digest:\n"
        "  python:3.11-slim-bookworm: dial tcp: lookup registry-1.docker.io: no such host\n"
        "  tensorflow/tensorflow:2.21.0: dial tcp: lookup registry-1.docker.io: no such host\n"
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
    assert resolvers._split_ref(ref) == expected


def test_argv_builders() -> None:
    assert inspect_manifest_argv("r/x:1") == [
        "docker", "buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}", "r/x:1",
    ]  # fmt: skip
    assert resolvers.pip_list_argv("r/base:1") == [
        "docker", "run", "--rm", "--network", "none", "--entrypoint",
        "/opt/tf2aif/venv/bin/python", "r/base:1",
        "-m", "pip", "list", "--format", "json", "--disable-pip-version-check",
    ]  # fmt: skip


def test_newer_lock_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tf2aif.lock"
    path.write_text("format: 9\nmanifest: tf2aif.yaml\n")
    with pytest.raises(LockError, match="lock format 9 is newer than this tf2aif reads") as info:
        load_lock(path)
    assert isinstance(info.value, Tf2aifError) and info.value.exit_code == 1


@pytest.mark.parametrize("module", ["lockfile", "inputs"])
def test_only_the_resolvers_reach_docker_or_a_registry(module: str) -> None:
    """The lock's data, diff and inputs are pure; resolving is one module, passed in."""
    import ast

    import tf2aif.lock

    source = (Path(tf2aif.lock.__file__).parent / f"{module}.py").read_text()
    imported = {
        alias.name.split(".")[0] if isinstance(node, ast.Import) else (node.module or "")
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {"subprocess", "httpx", "tf2aif.lock.resolvers"} & imported
    assert len(source.splitlines()) <= 400

"""`tf2aif lock` / `tf2aif lock --check` through the real CLI, without registries: the vendor
map pins every vendor image by digest, so nothing needs resolving."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tf2aif.cli.main import main

PINNED = "mirror.example/base:1@sha256:" + "a" * 64


@pytest.fixture(autouse=True)
def _no_env_vendor_map(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF2AIF_VENDOR_MAP", raising=False)
    monkeypatch.delenv("TF2AIF_RECIPE_PATH", raising=False)


def lock_argv(project: Path, *extra: str) -> list[str]:
    vendor_map = project.parent / "vendor-map.yaml"
    if not vendor_map.exists():
        refs = ("python:3.11-slim-bookworm", "tensorflow/tensorflow:2.21.0")
        vendor_map.write_text(yaml.safe_dump(dict.fromkeys(refs, PINNED)))
    return ["lock", str(project), "--vendor-map", str(vendor_map), *extra]


def test_lock_then_check_passes(project: Path, capsys) -> None:
    assert main(lock_argv(project)) == 0
    assert "wrote" in capsys.readouterr().out
    data = yaml.safe_load((project.parent / "tf2aif.lock").read_text())
    assert data["images"]["python:3.11-slim-bookworm"]["source"] == PINNED
    assert main(lock_argv(project, "--check")) == 0
    assert "is up to date (files, images and tools checked)" in capsys.readouterr().out


def test_the_manifest_folder_works_too(project: Path) -> None:
    assert main(lock_argv(project.parent)) == 0
    assert (project.parent / "tf2aif.lock").is_file()


def test_relock_without_changes_is_byte_identical(project: Path) -> None:
    assert main(lock_argv(project)) == 0
    first = (project.parent / "tf2aif.lock").read_bytes()
    assert main(lock_argv(project)) == 0
    assert (project.parent / "tf2aif.lock").read_bytes() == first


def test_check_fails_naming_the_changed_model_file_and_plugin(project: Path, capsys) -> None:
    assert main(lock_argv(project)) == 0
    (project.parent / "models" / "m" / "saved_model.pb").write_bytes(b"graph-v2")
    (project.parent / "app" / "helpers.py").write_text("def scale(x):\n    return x / 255\n")
    capsys.readouterr()
    assert main(lock_argv(project, "--check", "--offline")) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{project.parent / 'tf2aif.lock'} is out of date (2 change(s)):",
        "  changed  app/helpers.py",
        "  changed  models/m/saved_model.pb",
        "run `tf2aif lock` and commit tf2aif.lock if these changes are intended",
    ]


def test_check_fails_when_the_manifest_changes(project: Path, capsys) -> None:
    assert main(lock_argv(project)) == 0
    project.write_text(project.read_text().replace("registry: 127.0.0.1:5000/tf2aif-test", ""))
    assert main(lock_argv(project, "--check", "--offline")) == 1
    assert "  changed  tf2aif.yaml" in capsys.readouterr().err


def test_check_without_the_vendor_map_says_so(project: Path, capsys) -> None:
    assert main(lock_argv(project)) == 0
    capsys.readouterr()
    assert main(["lock", str(project), "--check", "--offline"]) == 1
    err = capsys.readouterr().err
    assert (
        f"python:3.11-slim-bookworm now comes from python:3.11-slim-bookworm (locked {PINNED})"
        in err
    )
    assert "(pass the vendor map the lock was written with: --vendor-map)" in err


def test_check_without_a_lock_exits_1(project: Path, capsys) -> None:
    assert main(lock_argv(project, "--check")) == 1
    assert "no lock file; run `tf2aif lock` and commit tf2aif.lock" in capsys.readouterr().err


def test_invalid_manifest_exits_1_with_its_location(project: Path, capsys) -> None:
    project.write_text(project.read_text().replace("runtimes: [tflite]", "runtimes: [tflight]"))
    assert main(lock_argv(project)) == 1
    assert "tflight" in capsys.readouterr().err


def test_offline_needs_check(project: Path, capsys) -> None:
    assert main(lock_argv(project, "--offline")) == 1
    assert "--offline only applies to --check" in capsys.readouterr().err


def test_print_writes_nothing_and_vendor_map_out(project: Path, capsys) -> None:
    assert main(lock_argv(project, "--print")) == 0
    assert capsys.readouterr().out.startswith("# Written by `tf2aif lock`")
    assert not (project.parent / "tf2aif.lock").exists()
    out_map = project.parent / "pinned.yaml"
    assert main(lock_argv(project, "--write-vendor-map", str(out_map))) == 0
    assert yaml.safe_load(out_map.read_text()) == {
        "python:3.11-slim-bookworm": PINNED,
        "tensorflow/tensorflow:2.21.0": PINNED,
    }


def test_the_pinned_vendor_map_feeds_bake(project: Path, capsys) -> None:
    out_map = project.parent / "pinned.yaml"
    assert main(lock_argv(project, "--write-vendor-map", str(out_map))) == 0
    capsys.readouterr()
    assert main(["bake", str(project), "--print", "--vendor-map", str(out_map)]) == 0
    bake = capsys.readouterr().out
    assert f'"VENDOR_IMAGE": "{PINNED}"' in bake


def test_bad_tools_from_is_a_clear_error(project: Path, capsys) -> None:
    assert main(lock_argv(project, "--tools-from", "convert-tf")) == 1
    assert "--tools-from 'convert-tf': expected FOLDER=IMAGE" in capsys.readouterr().err


def test_check_writes_the_locked_vendor_map_only_when_it_passes(project: Path) -> None:
    assert main(lock_argv(project)) == 0
    pinned = project.parent / ".tf2aif" / "vendor-pinned.yaml"
    assert main(lock_argv(project, "--check", "--write-vendor-map", str(pinned))) == 0
    assert yaml.safe_load(pinned.read_text())["tensorflow/tensorflow:2.21.0"] == PINNED
    pinned.unlink()
    (project.parent / "models" / "m" / "saved_model.pb").write_bytes(b"graph-v2")
    assert main(lock_argv(project, "--check", "--write-vendor-map", str(pinned))) == 1
    assert not pinned.exists()

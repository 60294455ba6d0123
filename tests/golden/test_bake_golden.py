"""Manifest in, docker-bake.json out, byte for byte.

Regenerate on purpose with `TF2AIF_UPDATE_GOLDEN=1 pytest tests/golden` and review the diff.
Content digests cover every byte of tf2aif the images copy, so the golden files show each one
as `<content:TARGET>`: they pin the graph, tests/unit/test_content_digests.py pins the digests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tf2aif.bake import EmitOptions, bake_json
from tf2aif.digests import CONTENT_DIGEST_LABEL
from tf2aif.manifest import load_manifest
from tf2aif.plan import make_plan
from tf2aif.recipes import load_recipes
from tf2aif.resolve import resolve

from projects import write_project

CASES = Path(__file__).parent / "cases"
OPTIONS = {"keras-cache": EmitOptions(cache="registry")}


def emit(case: str, workdir: Path) -> str:
    manifest_text = (CASES / case / "tf2aif.yaml").read_text()
    keras = "m.keras" in manifest_text
    file = write_project(
        workdir, manifest_text, model="models/m.keras" if keras else "models/m", keras=keras
    )
    manifest, _ = load_manifest(file)
    plan = make_plan(resolve(manifest, load_recipes(env={})), env={})
    return bake_json(plan, OPTIONS.get(case, EmitOptions()))


def masked(text: str) -> str:
    """The bake file with each image's content digest (full, and the short form in tags and
    the version label) replaced by `<content:TARGET>`."""
    for name, target in json.loads(text)["target"].items():
        content = target.get("labels", {}).get(CONTENT_DIGEST_LABEL)
        if content:
            text = text.replace(content, f"<content:{name}>")
            text = text.replace(content[7:19], f"<content:{name}>")
    return text


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_emitted_bake_file_matches_golden(case, tmp_path):
    text = masked(emit(case, tmp_path))
    golden = CASES / case / "docker-bake.json"
    if os.environ.get("TF2AIF_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.is_file(), f"no golden file for {case}; run with TF2AIF_UPDATE_GOLDEN=1"
    assert text == golden.read_text()


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_emission_is_deterministic_across_folders(case, tmp_path):
    assert emit(case, tmp_path / "a") == emit(case, tmp_path / "b")


def test_bake_file_uses_only_bake_keys(tmp_path):
    data = json.loads(emit("full", tmp_path))
    assert set(data) == {"group", "target"}
    allowed = {
        "context",
        "contexts",
        "dockerfile",
        "args",
        "labels",
        "annotations",
        "tags",
        "platforms",
        "output",
        "cache-from",
        "cache-to",
    }
    for name, target in data["target"].items():
        assert set(target) <= allowed, name
    for name, group in data["group"].items():
        assert set(group) == {"targets"}
        assert all(t in data["target"] for t in group["targets"]), name


def test_links_point_at_targets_that_exist(tmp_path):
    data = json.loads(emit("full", tmp_path))
    for name, target in data["target"].items():
        for value in target.get("contexts", {}).values():
            if value.startswith("target:"):
                linked = data["target"][value.removeprefix("target:")]
                if "platforms" in linked and "platforms" in target and name.startswith("serve-"):
                    assert set(target["platforms"]) <= set(linked["platforms"]), name


def test_golden_cases_hold_inputs_and_outputs_only():
    for case in CASES.iterdir():
        assert sorted(p.name for p in case.iterdir()) == ["docker-bake.json", "tf2aif.yaml"], case

"""Real `docker buildx bake --print` accepts every emitted bake file (no daemon needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tf2aif.pipeline.bake import BAKE_FILE, bake_json, write_build_dir
from tf2aif.pipeline.manifest import load_manifest
from tf2aif.pipeline.plan import make_plan
from tf2aif.pipeline.recipes import load_recipes
from tf2aif.pipeline.resolve import resolve

from projects import write_project

CASES = Path(__file__).parents[1] / "golden" / "cases"


def _buildx() -> str | None:
    if shutil.which("docker") is None:
        return None
    proc = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


pytestmark = pytest.mark.skipif(
    _buildx() is None, reason="docker buildx is not installed (scripts/docker-up.sh installs it)"
)


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_buildx_accepts_emitted_file(case, tmp_path):
    text = (CASES / case / "tf2aif.yaml").read_text()
    keras = "m.keras" in text
    file = write_project(
        tmp_path, text, model="models/m.keras" if keras else "models/m", keras=keras
    )
    plan = make_plan(resolve(load_manifest(file)[0], load_recipes(env={})), env={})
    write_build_dir(plan, bake_json(plan))
    # --print needs no daemon: point DOCKER_HOST at nothing to prove it
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DOCKER_HOST": "unix:///nonexistent.sock",
    }
    groups = ["default", "convert"]
    proc = subprocess.run(
        ["docker", "buildx", "bake", "-f", BAKE_FILE, "--print", *groups],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    emitted = json.loads((tmp_path / BAKE_FILE).read_text())
    assert set(printed["target"]) == set(emitted["target"])
    for name, target in printed["target"].items():
        if name.startswith("base-"):
            # every base build gets the shared install.sh as a named context, copied beside it
            common = target["contexts"]["tf2aif-base-common"]
            assert common == emitted["target"][name]["contexts"]["tf2aif-base-common"]
            assert (tmp_path / common / "install.sh").is_file()
            assert not (tmp_path / target["context"] / "install.sh").exists()
        if name.startswith("serve-"):
            assert target["contexts"]["artifact"] == emitted["target"][name]["contexts"]["artifact"]
            assert target["platforms"] == emitted["target"][name]["platforms"]
            assert target["tags"] == emitted["target"][name]["tags"]

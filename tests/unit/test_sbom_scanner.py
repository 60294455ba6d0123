"""base_images/sbom-scanner/scan.py against the BuildKit SBOM scanner protocol, syft faked."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tf2aif.resources import data_dir

SCAN = data_dir("base_images") / "sbom-scanner" / "scan.py"


@pytest.fixture
def scan():
    spec = importlib.util.spec_from_file_location("sbom_scan", SCAN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def layout(tmp_path):
    core = tmp_path / "src" / "core" / "sbom"
    extras = tmp_path / "src" / "extras"
    for folder in (core, extras / "sbom-build", extras / "sbom-context", tmp_path / "out"):
        folder.mkdir(parents=True)
    (extras / "stray-file").write_text("")
    return tmp_path


def test_sources_core_first_then_each_extra_folder(scan, layout):
    env = {"BUILDKIT_SCAN_SOURCE": str(layout / "src/core/sbom")}
    assert scan.sources(env) == [layout / "src/core/sbom"]
    for extras in ("", str(layout / "missing")):  # unset, empty, or absent: no extras
        assert scan.sources(env | {"BUILDKIT_SCAN_SOURCE_EXTRAS": extras}) == [
            layout / "src/core/sbom"
        ]
    env["BUILDKIT_SCAN_SOURCE_EXTRAS"] = str(layout / "src/extras")
    assert [p.name for p in scan.sources(env)] == ["sbom", "sbom-build", "sbom-context"]


def test_syft_argv_scans_inside_the_mounted_root_with_image_catalogers(scan):
    assert scan.syft_argv(Path("/run/src/core/sbom"), Path("/tmp/sbom.json")) == [
        "syft", "scan", "dir:/run/src/core/sbom", "--base-path", "/run/src/core/sbom",
        "--override-default-catalogers", "image", "--source-name", "sbom", "--quiet",
        "--output", "spdx-json=/tmp/sbom.json",
    ]  # fmt: skip


def test_main_writes_one_statement_per_file_system(scan, layout, monkeypatch):
    def fake_syft(argv, check):
        output = Path(argv[-1].removeprefix("spdx-json="))
        name = argv[argv.index("--source-name") + 1]
        doc = {"spdxVersion": "SPDX-2.3", "name": name, "packages": [{"name": "pip"}]}
        output.write_text(json.dumps(doc))

    monkeypatch.setattr(scan.subprocess, "run", fake_syft)
    env = {
        "BUILDKIT_SCAN_SOURCE": str(layout / "src/core/sbom"),
        "BUILDKIT_SCAN_SOURCE_EXTRAS": str(layout / "src/extras"),
        "BUILDKIT_SCAN_DESTINATION": str(layout / "out"),
    }
    assert scan.main(env) == 0
    written = sorted(p.name for p in (layout / "out").iterdir())
    assert written == ["sbom-build.spdx.json", "sbom-context.spdx.json", "sbom.spdx.json"]
    statement = json.loads((layout / "out" / "sbom.spdx.json").read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v0.1"
    assert statement["predicateType"] == "https://spdx.dev/Document"
    assert statement["subject"] == []
    assert statement["predicate"]["name"] == "sbom"
    assert statement["predicate"]["creationInfo"]["comment"].startswith(
        "tf2aif sbom-scanner: syft on linux/"
    )


def test_main_refuses_to_run_without_the_required_variables(scan, layout):
    with pytest.raises(SystemExit, match="BUILDKIT_SCAN_DESTINATION is not set"):
        scan.main({"BUILDKIT_SCAN_SOURCE": str(layout)})
    with pytest.raises(SystemExit, match="BUILDKIT_SCAN_SOURCE is not set"):
        scan.main({"BUILDKIT_SCAN_DESTINATION": str(layout / "out")})

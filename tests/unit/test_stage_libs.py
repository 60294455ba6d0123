"""Each build stage copies a subset of tf2aif; every module it runs must import only that subset."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tf2aif
from tf2aif.pipeline.bake import STAGE_LIBS

PACKAGE = Path(tf2aif.__file__).parent
# Modules present in a subset but never run in that stage (CLI glue imported by `tf2aif ...`).
CLI_ONLY: set[str] = set()


def _imports(file: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tf2aif"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("tf2aif")}
    return names


def _provided(members: tuple[str, ...]) -> set[str]:
    out = {"tf2aif"}
    for member in members:
        path = PACKAGE / member
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            rel = file.relative_to(PACKAGE).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out.add(".".join(["tf2aif", *parts]))
    return out


@pytest.mark.parametrize("lib", [name for name, members in STAGE_LIBS.items() if members])
def test_stage_subset_is_closed_under_imports(lib):
    members = STAGE_LIBS[lib]
    provided = _provided(members)
    for member in members:
        path = PACKAGE / member
        for file in (
            sorted(path.rglob("*.py"))
            if path.is_dir()
            else ([path] if path.suffix == ".py" else [])
        ):
            if file.relative_to(PACKAGE).as_posix() in CLI_ONLY:
                continue
            missing = _imports(file) - provided
            assert not missing, (
                f"{file.relative_to(PACKAGE)} imports {sorted(missing)}, not copied into {lib}"
            )

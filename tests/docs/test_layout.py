"""The README's layout table names every folder of the repository and of the package, and only
folders that exist; image code imports nothing from the host side; only the CLI prints."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "builder" / "tf2aif"
# Top-level files every Python project has; the table is about where code and data live.
UNLISTED = {"README.md", ".gitignore", "LICENSE"}


def _layout_paths() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {
        token.rstrip("/") for row in rows for token in re.findall(r"`([^`]+)`", row.split("|")[1])
    }


def _tracked_top_level() -> set[str]:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {name.split("/", 1)[0] for name in files} - UNLISTED


def _package_entries() -> set[str]:
    return {
        f"builder/tf2aif/{p.name}"
        for p in PACKAGE.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists())
        or (p.suffix == ".py" and p.stem not in {"__init__", "__main__"})
    }


def test_layout_table_names_only_what_exists():
    missing = sorted(p for p in _layout_paths() if not (ROOT / p).exists())
    assert not missing, f"README layout names paths that do not exist: {missing}"


def test_layout_table_names_every_top_level_entry_and_package_folder():
    listed = _layout_paths()
    unlisted = sorted((_tracked_top_level() | _package_entries()) - listed)
    assert not unlisted, f"README layout leaves out: {unlisted}"


def _tf2aif_imports(file: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tf2aif"):
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("tf2aif")}
    return names


IMAGE_MAY_IMPORT = ("tf2aif.image", "tf2aif.errors", "tf2aif.__version__")


@pytest.mark.parametrize(
    "file",
    sorted((PACKAGE / "image").rglob("*.py")),
    ids=lambda p: p.relative_to(PACKAGE).as_posix(),
)
def test_image_code_imports_nothing_from_the_host_side(file):
    outside = {
        name
        for name in _tf2aif_imports(file)
        if not any(name == ok or name.startswith(ok + ".") for ok in IMAGE_MAY_IMPORT)
    }
    assert not outside, f"{file.relative_to(PACKAGE)} imports {sorted(outside)}"


# Executables that run inside images print their own one-line errors.
PRINTS_OUTSIDE_CLI = {"image/convert/__main__.py", "image/server/__main__.py"}


def _prints(file: Path) -> bool:
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in {"print", "Console"}:
                return True
    return False


def test_only_the_cli_prints():
    printers = sorted(
        rel
        for file in PACKAGE.rglob("*.py")
        if not (rel := file.relative_to(PACKAGE).as_posix()).startswith("cli/")
        and rel not in PRINTS_OUTSIDE_CLI
        and _prints(file)
    )
    assert not printers, f"modules outside cli/ that print: {printers}"


def test_test_modules_outside_packages_have_unique_names():
    """pytest imports a test folder without __init__.py by file name alone: two such files of
    one name stop collection of the whole suite."""
    tests = Path(__file__).resolve().parents[1]
    seen: dict[str, Path] = {}
    for path in sorted(tests.rglob("test_*.py")):
        if (path.parent / "__init__.py").exists():
            continue
        assert path.name not in seen, f"{path} and {seen[path.name]} share a module name"
        seen[path.name] = path

"""noxfile.py says what it runs: the sessions its docstring names exist, and `unit` covers
every folder of pure tests, with TensorFlow blocked."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import no_tensorflow

ROOT = Path(__file__).resolve().parents[2]
NOXFILE = ast.parse((ROOT / "noxfile.py").read_text())
# Folders whose tests need TensorFlow, real servers of converted models or Docker throughout.
NOT_PURE_FOLDERS = {"tests/conversion", "tests/server", "tests/integration"}


def _sessions() -> set[str]:
    return {
        node.name
        for node in NOXFILE.body
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(d).startswith("nox.session") for d in node.decorator_list)
    }


def _assigned(name: str):
    for node in NOXFILE.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"noxfile.py assigns no {name}")


def test_the_docstring_names_exactly_the_sessions():
    first_line = ast.get_docstring(NOXFILE).splitlines()[0]
    named = set(re.findall(r"([a-z]+)(?: \([^)]*\))?[,.]", first_line.split(":", 1)[1]))
    assert named == _sessions()


def test_unit_covers_every_folder_of_pure_tests():
    folders = {
        f"tests/{p.name}"
        for p in (ROOT / "tests").iterdir()
        if p.is_dir() and any(p.rglob("test_*.py"))
    }
    pure = _assigned("PURE")
    assert sorted(pure) == sorted(folders - NOT_PURE_FOLDERS)
    assert all((ROOT / folder).is_dir() for folder in pure)


def test_unit_leaves_out_docker_conversion_and_slow_tests():
    assert _assigned("NOT_PURE") == "not docker and not conversion and not slow"


@pytest.mark.parametrize("name", ["tensorflow", "tensorflow.python.ops", "keras", "tf_keras"])
def test_the_guard_blocks_tensorflow(name):
    with pytest.raises(ImportError, match="blocked in the pure test session"):
        no_tensorflow.Blocker().find_spec(name)


@pytest.mark.parametrize("name", ["numpy", "tensorflow_probability_free", "tf2aif.place"])
def test_the_guard_lets_everything_else_through(name):
    assert no_tensorflow.Blocker().find_spec(name) is None

"""Modules stay small, or say at the top why one is not: over 400 lines, the module docstring
has a paragraph starting "One module" giving the reason."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("builder/tf2aif", "benchmarks")
LIMIT = 400


def _modules():
    for folder in FOLDERS:
        yield from sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", list(_modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_long_module_says_why_it_is_one(path):
    text = path.read_text()
    if text.count("\n") <= LIMIT:
        return
    docstring = ast.get_docstring(ast.parse(text)) or ""
    assert "\nOne module" in docstring, f"{path.name} is over {LIMIT} lines and does not say why"

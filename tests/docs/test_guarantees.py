"""docs/guarantees.md names the tests that prove each promise: every one of them exists, and every
one it calls fuzz is a generated-input test."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "guarantees.md").read_text()
REFERENCES = sorted(set(re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", DOC)))


def _functions(file: str) -> dict[str, ast.FunctionDef]:
    tree = ast.parse((ROOT / file).read_text())
    return {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_the_document_names_tests():
    assert len(REFERENCES) >= 30


@pytest.mark.parametrize("file,function", REFERENCES, ids=lambda v: v)
def test_every_named_test_exists(file, function):
    assert (ROOT / file).is_file(), file
    if function:
        assert function in _functions(file), f"{file} has no {function}"


def _is_generated(file: str, function: str) -> bool:
    """Decorated with Hypothesis's @given and marked fuzz (on the function or the module)."""
    node = _functions(file)[function]
    decorators = [ast.unparse(d) for d in node.decorator_list]
    module_marked = re.search(
        r"^pytestmark = .*pytest\.mark\.fuzz", (ROOT / file).read_text(), re.M
    )
    marked = module_marked or "pytest.mark.fuzz" in decorators
    return bool(marked) and any(d.startswith(("given", "hypothesis.given")) for d in decorators)


def test_tests_called_fuzz_are_generated_input_tests():
    called = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)` \((?:fuzz|schemathesis)", DOC))
    for row in (line for line in DOC.splitlines() if "(all fuzz)" in line):
        called |= set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", row))
    assert len(called) >= 15
    for file, function in sorted(called):
        if "contract" in file:  # schemathesis generates the requests itself
            continue
        assert _is_generated(file, function), f"{file}::{function} is not a fuzz test"

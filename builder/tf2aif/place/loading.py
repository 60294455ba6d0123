"""Read a YAML/JSON placement input and check it against its JSON Schema, with located errors.

Every schema problem becomes a ManifestIssue carrying file:line:column (from PyYAML's node
marks) and the field path (`nodes[2].memory_mb`); all of them are raised together.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tf2aif.errors import ManifestError, ManifestIssue, SourceLocation, did_you_mean
from tf2aif.resources import data_dir

__all__ = ["Document", "load_document"]

Path_ = tuple[str | int, ...]
_KEY = object()  # marks[(*path, _KEY)]: where the key of a mapping entry was written


class Document:
    """A parsed input: its data and where each field was written."""

    def __init__(self, file: str, data: Any, marks: dict[Path_, tuple[int, int]]) -> None:
        self.file = file
        self.data = data
        self.marks = marks

    def locate(self, path: Path_, key: bool = False) -> SourceLocation:
        """The location of `path`'s value (or key), or of its nearest written ancestor."""
        if key and (*path, _KEY) in self.marks:
            line, column = self.marks[(*path, _KEY)]
            return SourceLocation(file=self.file, line=line, column=column, path=format_path(path))
        probe = tuple(path)
        while probe not in self.marks and probe:
            probe = probe[:-1]
        line, column = self.marks.get(probe, (None, None))
        return SourceLocation(file=self.file, line=line, column=column, path=format_path(path))

    def issue(self, path: Path_, message: str, key: bool = False) -> ManifestIssue:
        return ManifestIssue(location=self.locate(path, key), message=message)


def format_path(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _construct(node: yaml.Node, path: Path_, marks: dict[Path_, tuple[int, int]]) -> Any:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            out[key] = _construct(value_node, (*path, key), marks)
            marks[(*path, key, _KEY)] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), marks) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


@cache
def _schema(name: str) -> dict[str, Any]:
    return json.loads((data_dir("schema") / name).read_text())


def load_document(path: str | Path, schema_name: str) -> Document:
    """Parse `path` (YAML or JSON), validate it against schema/`schema_name`, or raise."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ManifestError(
            [
                ManifestIssue(
                    location=SourceLocation(file=file), message=f"cannot read: {exc.strerror}"
                )
            ],
            file=file,
        ) from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        location = SourceLocation(
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        )
        raise ManifestError(
            [ManifestIssue(location=location, message=f"not valid YAML/JSON: {exc}")], file=file
        ) from exc
    marks: dict[Path_, tuple[int, int]] = {}
    data = _construct(root, (), marks) if root is not None else None
    document = Document(file, data, marks)
    issues = list(_schema_issues(document, _schema(schema_name)))
    if issues:
        raise ManifestError(issues, file=file)
    return document


def _schema_issues(document: Document, schema: dict[str, Any]) -> Iterator[ManifestIssue]:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(document.data), key=lambda e: (list(map(str, e.path)), e.message)
    )
    for error in errors:
        path: Path_ = tuple(error.absolute_path)
        yield from _humanise(document, error, path)


def _humanise(
    document: Document, error: jsonschema.ValidationError, path: Path_
) -> Iterator[ManifestIssue]:
    kind, expected = error.validator, error.validator_value
    if kind == "required":
        missing = [name for name in expected if name not in (error.instance or {})]
        for name in missing:
            yield document.issue(path, f"missing required field {name!r}")
        return
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        for name in sorted(set(error.instance) - set(allowed)):
            hint = did_you_mean(name, allowed)
            yield document.issue((*path, name), f"unknown field {name!r}{hint}", key=True)
        return
    if kind == "enum":
        hint = did_you_mean(str(error.instance), map(str, expected))
        choices = ", ".join(map(str, expected))
        yield document.issue(path, f"{error.instance!r} is not one of: {choices}{hint}")
        return
    if kind == "type":
        yield document.issue(path, f"must be {_article(expected)}, got {error.instance!r}")
        return
    yield document.issue(path, error.message)


def _article(kind: Any) -> str:
    if isinstance(kind, list):
        return " or ".join(_article(k) for k in kind)
    return {"integer": "an integer", "object": "a mapping", "array": "a list"}.get(
        kind, f"a {kind}"
    )

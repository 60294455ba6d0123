"""YAML with positions, and JSON Schema errors a person can act on.

`load_yaml` keeps PyYAML's marks for every mapping key and value, so a schema error at
`targets.include[2].precision` can be reported as `tf2aif.yaml:17:39`. `schema_issues` turns
jsonschema's errors into ManifestIssues: located, with the field path, in plain words.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema
import yaml

from tf2aif.errors import ManifestIssue, SourceLocation, did_you_mean
from tf2aif.resources import data_dir

__all__ = ["LoadedYaml", "dotted", "load_schema", "load_yaml", "schema_issues"]

Path_ = tuple[str | int, ...]
_SCALARS = yaml.constructor.SafeConstructor()


@dataclass(frozen=True, kw_only=True)
class LoadedYaml:
    file: str
    data: Any
    marks: Mapping[Path_, tuple[int, int]]  # path -> (line, column), 1-based; keys point at the key
    issues: tuple[ManifestIssue, ...] = ()  # duplicate keys and other structural problems

    def location(self, path: Path_) -> SourceLocation:
        """The closest recorded position at or above `path`."""
        probe = tuple(path)
        while probe and probe not in self.marks:
            probe = probe[:-1]
        line, column = self.marks.get(probe, (None, None))
        return SourceLocation(file=self.file, line=line, column=column, path=dotted(path))


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(text: str, file: str) -> LoadedYaml:
    """Parse YAML keeping positions; a syntax error becomes one located issue."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = SourceLocation(
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        )
        problem = getattr(exc, "problem", None) or str(exc)
        return LoadedYaml(
            file=file,
            data=None,
            marks={},
            issues=(ManifestIssue(location=where, message=f"invalid YAML: {problem}"),),
        )
    marks: dict[Path_, tuple[int, int]] = {}
    issues: list[ManifestIssue] = []
    data = _construct(node, (), marks, issues, file) if node is not None else None
    return LoadedYaml(file=file, data=data, marks=marks, issues=tuple(issues))


def _construct(node: yaml.Node, path: Path_, marks: dict, issues: list, file: str) -> Any:
    marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _SCALARS.construct_object(key_node)
            child = (*path, key)
            if key in out:
                where = SourceLocation(
                    file=file,
                    line=key_node.start_mark.line + 1,
                    column=key_node.start_mark.column + 1,
                    path=dotted(child),
                )
                issues.append(ManifestIssue(location=where, message=f"duplicate key {key!r}"))
            # Scalars are located at their value, collections at their key (the value starts a line later).
            at = value_node if isinstance(value_node, yaml.ScalarNode) else key_node
            marks[child] = (at.start_mark.line + 1, at.start_mark.column + 1)
            out[key] = _construct(value_node, child, marks, issues, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*path, i), marks, issues, file) for i, item in enumerate(node.value)
        ]
    return _SCALARS.construct_object(node, deep=True)


@cache
def load_schema(name: str) -> Mapping[str, Any]:
    return json.loads((data_dir("schema") / name).read_text())


def schema_issues(loaded: LoadedYaml, schema: Mapping[str, Any]) -> list[ManifestIssue]:
    validator = jsonschema.Draft202012Validator(schema)
    issues = [_issue(loaded, error) for error in _leaf_errors(validator.iter_errors(loaded.data))]
    return sorted(issues, key=lambda i: (i.location.line or 0, i.location.column or 0, i.message))


def _leaf_errors(
    errors: Iterator[jsonschema.ValidationError],
) -> Iterator[jsonschema.ValidationError]:
    """For oneOf/anyOf, report the best-matching branch's error instead of the umbrella."""
    for error in errors:
        if error.validator in ("oneOf", "anyOf") and error.context:
            yield jsonschema.exceptions.best_match(error.context)
        else:
            yield error


def _issue(loaded: LoadedYaml, error: jsonschema.ValidationError) -> ManifestIssue:
    path: Path_ = tuple(error.absolute_path)
    message = _humanise(error)
    if error.validator == "additionalProperties":
        extra = _unexpected_keys(error)
        if extra:
            path = (*path, extra[0])
            allowed = list(error.schema.get("properties", {}))
            message = f"unknown key {extra[0]!r}{did_you_mean(extra[0], allowed)}; expected one of: {', '.join(allowed)}"
    return ManifestIssue(location=loaded.location(path), message=message)


def _unexpected_keys(error: jsonschema.ValidationError) -> list[str]:
    allowed = set(error.schema.get("properties", {}))
    return (
        sorted(k for k in error.instance if k not in allowed)
        if isinstance(error.instance, dict)
        else []
    )


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "nothing",
}


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"


def _humanise(error: jsonschema.ValidationError) -> str:
    kind, schema, value = error.validator, error.schema, error.instance
    expected = schema.get("x-expected") or schema.get("description")
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing required key {missing!r}"
    if kind == "type":
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return (
            f"expected {' or '.join(_TYPE_WORDS.get(t, t) for t in types)}, got {_describe(value)}"
        )
    if kind == "enum":
        hint = (
            did_you_mean(value, [str(v) for v in schema["enum"]]) if isinstance(value, str) else ""
        )
        return f"expected one of {', '.join(map(str, schema['enum']))}, got {value!r}{hint}"
    if kind == "const":
        return f"expected {schema['const']!r}, got {value!r}"
    if kind == "pattern":
        return f"{value!r} is not valid: expected {expected or 'a value matching ' + schema['pattern']}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {
            "minimum": ">=",
            "maximum": "<=",
            "exclusiveMinimum": ">",
            "exclusiveMaximum": "<",
        }[kind]
        return f"expected a number {bound} {schema[kind]}, got {value!r}"
    if kind == "minItems":
        return f"expected at least {schema['minItems']} item(s), got {len(value)}"
    if kind == "uniqueItems":
        return f"items must be unique, got {value!r}"
    if kind in ("minProperties", "not"):
        return f"expected {expected or 'at least one key'}, got {_describe(value)}"
    if kind == "minLength":
        return "must not be empty"
    return error.message

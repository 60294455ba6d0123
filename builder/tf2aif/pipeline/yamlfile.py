"""The one loader for every YAML/JSON file tf2aif reads, and JSON Schema errors a person can act on.

`load_file` reads a regular file of bounded size, decodes it as UTF-8 and parses it with PyYAML
(JSON is read the same way), keeping the marks of every mapping key and value so a schema error at
`targets.include[2].precision` is reported as `tf2aif.yaml:17:39`. What hostile or broken input can
do is bounded and reported, never a traceback: file size, node count (aliases count every time they
are expanded, so an alias bomb stops early), nesting depth, self-referencing aliases, YAML tags
outside JSON's types, merge keys, non-string keys, non-finite numbers, over-long integers, bytes
that are not UTF-8 and control characters (each located at line:column).

`schema_issues` turns jsonschema's errors into ManifestIssues: located, with the field path, every
one of them (two unknown keys in one mapping are two issues), in plain words.

One module: the one bounded loader; its limits, marks and error locations interact (an alias is
counted against the value budget and located at its anchor), so they stay in one place.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tf2aif.errors import ManifestError, ManifestIssue, SourceLocation, did_you_mean
from tf2aif.resources import data_dir

__all__ = [
    "Limits",
    "LoadedYaml",
    "dotted",
    "file_problem",
    "load_checked",
    "load_file",
    "load_schema",
    "load_yaml",
    "read_text",
    "schema_issues",
    "short",
]

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one input file may cost. Real manifests, records and lock files are far below these."""

    max_bytes: int = 4 * 2**20
    max_nodes: int = 50_000  # scalars + collections, counting every expansion of an alias
    max_depth: int = 64


DEFAULT_LIMITS = Limits()
MAX_ISSUES = 50  # per file: enough to fix a broken file, bounded for a hostile one
_SCALARS = yaml.constructor.SafeConstructor()
_CORE = "tag:yaml.org,2002:"
_JSON_SCALARS = {f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null")}
# Characters YAML does not allow in a stream (C0/C1 controls except tab and newlines, surrogates, U+FFFE/F).
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


@dataclass(frozen=True, kw_only=True)
class LoadedYaml:
    file: str
    data: Any
    marks: Mapping[Path_, tuple[int, int]]  # path -> (line, column), 1-based; keys point at the key
    issues: tuple[ManifestIssue, ...] = ()  # unreadable file, YAML and structural problems
    key_marks: Mapping[Path_, tuple[int, int]] = field(default_factory=dict)  # where each key is
    replaced: frozenset[str] = frozenset()  # fields read as null because of an issue above

    def schema_issues(self, schema: Mapping[str, Any]) -> list[ManifestIssue]:
        """Schema issues, less those at a field already reported (a tag, a non-finite number)."""
        return [i for i in schema_issues(self, schema) if i.location.path not in self.replaced]

    def location(self, path: Path_, *, key: bool = False) -> SourceLocation:
        """The closest recorded position at or above `path` (with `key`, the key's own position)."""
        if key and tuple(path) in self.key_marks:
            line, column = self.key_marks[tuple(path)]
            return SourceLocation(file=self.file, line=line, column=column, path=dotted(path))
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


def short(value: Any, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters: messages stay readable whatever the input holds."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "..." + text[-1:]


# -- files -----------------------------------------------------------------------------------


def file_problem(path: str | Path, *, what: str = "file", folder_ok: bool = False) -> str:
    """'' when `path` is a regular file (or a folder, if allowed); else what is wrong, in words."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return f"{what} {str(path)!r} does not exist"
    except OSError as exc:  # name too long, permission denied, a file used as a folder...
        return f"{what} {short(str(path))}: {exc.strerror or exc}"
    except ValueError:  # a NUL written as an escape in a quoted string
        return f"{what} {short(str(path))}: a path cannot contain a NUL character"
    if stat.S_ISDIR(info.st_mode):
        return "" if folder_ok else f"{what} {str(path)!r} is a folder, expected a file"
    if not stat.S_ISREG(info.st_mode):
        return f"{what} {str(path)!r} is not a regular file (a device, FIFO or socket)"
    return ""


def read_text(
    path: str | Path, *, limits: Limits = DEFAULT_LIMITS
) -> tuple[str, list[ManifestIssue]]:
    """The text of a regular UTF-8 file of at most `limits.max_bytes`, or located issues."""
    file = str(path)
    problem = file_problem(path)
    if problem:
        return "", [_at(file, None, None, problem)]
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        return "", [_at(file, None, None, f"cannot read: {exc.strerror or exc}")]
    if len(raw) > limits.max_bytes:
        return "", [
            _at(
                file,
                None,
                None,
                f"larger than {limits.max_bytes} bytes: not read (is it the right file?)",
            )
        ]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return "", [
            _at(
                file, line, column, f"not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded"
            )
        ]
    return text.removeprefix("\ufeff"), []


def load_file(path: str | Path, *, limits: Limits = DEFAULT_LIMITS) -> LoadedYaml:
    """Read and parse one YAML or JSON file; every problem is an issue of the result."""
    text, issues = read_text(path, limits=limits)
    if issues:
        return LoadedYaml(file=str(path), data=None, marks={}, issues=tuple(issues))
    return load_yaml(text, str(path), limits=limits)


def capped(issues: list[ManifestIssue], file: str) -> tuple[ManifestIssue, ...]:
    """At most MAX_ISSUES issues, the last one saying how many more there were."""
    if len(issues) <= MAX_ISSUES:
        return tuple(issues)
    more = f"... and {len(issues) - MAX_ISSUES + 1} more problems of the same kinds"
    return (*issues[: MAX_ISSUES - 1], _at(file, None, None, more))


def _at(
    file: str, line: int | None, column: int | None, message: str, path: Path_ = ()
) -> ManifestIssue:
    where = SourceLocation(file=file, line=line, column=column, path=dotted(path))
    return ManifestIssue(location=where, message=message)


# -- parsing ---------------------------------------------------------------------------------


class _TooBig(Exception):
    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.mark = mark


class _Composer(yaml.composer.Composer, yaml.resolver.Resolver):
    """PyYAML's composer (over libyaml's events when built with it), counting nodes and depth."""

    limits: Limits
    nodes = 0
    depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 (PyYAML's signature)
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            mark = self.peek_event().start_mark  # type: ignore[attr-defined]
            raise _TooBig(f"more than {self.limits.max_nodes} values: not read", mark)
        if self.depth >= self.limits.max_depth:
            mark = self.peek_event().start_mark  # type: ignore[attr-defined]
            raise _TooBig(f"nested deeper than {self.limits.max_depth} levels", mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# JSON's numbers with an exponent and no dot (1e-05, as Python's json writes them) are numbers too.
_Composer.add_implicit_resolver(
    f"{_CORE}float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


if getattr(yaml, "__with_libyaml__", False):

    class _Loader(_Composer, yaml.cyaml.CParser):  # type: ignore[misc]
        def __init__(self, text: str, limits: Limits) -> None:
            yaml.cyaml.CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self.limits = limits

else:  # pragma: no cover - PyYAML without libyaml: the same, in Python

    class _Loader(  # type: ignore[no-redef]
        _Composer, yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser
    ):
        def __init__(self, text: str, limits: Limits) -> None:
            yaml.reader.Reader.__init__(self, text)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self.limits = limits


def load_yaml(text: str, file: str, *, limits: Limits = DEFAULT_LIMITS) -> LoadedYaml:
    """Parse YAML keeping positions; a problem in the text becomes located issues."""
    bad = [_control_issue(text, file, m.start()) for m in _NOT_PRINTABLE.finditer(text)]
    if bad:
        return LoadedYaml(file=file, data=None, marks={}, issues=capped(bad, file))
    try:
        composer = _Loader(text, limits)
        try:
            node = composer.get_single_node()
        finally:
            composer.dispose()
    except _TooBig as exc:
        return _failed(text, file, exc.mark, str(exc))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if mark is None and isinstance(exc, yaml.reader.ReaderError):
            return LoadedYaml(
                file=file, data=None, marks={}, issues=(_control_issue(text, file, exc.position),)
            )
        return _failed(text, file, mark, f"invalid YAML: {problem}")
    except (RecursionError, MemoryError):
        return _failed(text, file, None, "invalid YAML: too deeply nested or too large")
    marks: dict[Path_, tuple[int, int]] = {}
    builder = _Builder(file=file, marks=marks, limits=limits)
    try:
        data = builder.value(node, ()) if node is not None else None
    except _TooBig as exc:
        return _failed(text, file, exc.mark, str(exc))
    return LoadedYaml(
        file=file,
        data=data,
        marks=marks,
        issues=capped(builder.issues, file),
        key_marks=builder.key_marks,
        replaced=frozenset(builder.replaced),
    )


_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # YAML's line breaks


def _control_issue(text: str, file: str, index: int) -> ManifestIssue:
    lines = _BREAK.split(text[:index])
    line, column = len(lines), len(lines[-1]) + 1
    char = text[index] if index < len(text) else ""
    code = f"U+{ord(char):04X}" if char else "a character"
    return _at(file, line, column, f"control character {code} is not allowed in YAML or JSON text")


def _failed(text: str, file: str, mark: Any, message: str) -> LoadedYaml:
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    lines = _BREAK.split(text)
    if line is not None and line > len(lines):  # "at the end of the stream": the last line's end
        line, column = len(lines), len(lines[-1]) + 1
    return LoadedYaml(file=file, data=None, marks={}, issues=(_at(file, line, column, message),))


class _Builder:
    """Nodes -> plain JSON-like values (dict, list, str, int, float, bool, None), with marks."""

    def __init__(self, *, file: str, marks: dict, limits: Limits) -> None:
        self.file, self.marks, self.limits = file, marks, limits
        self.issues: list[ManifestIssue] = []
        self.key_marks: dict[Path_, tuple[int, int]] = {}
        self.replaced: set[str] = set()
        self.count = 0
        self.active: set[int] = (
            set()
        )  # ids of the collections being built: an alias back into one is a cycle

    def issue(self, node: yaml.Node, path: Path_, message: str, *, replaced: bool = False) -> None:
        """Record a problem; `replaced`: the value at `path` was read as null because of it."""
        if replaced:
            self.replaced.add(dotted(path))
        mark = node.start_mark
        self.issues.append(_at(self.file, mark.line + 1, mark.column + 1, message, path))

    def value(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > self.limits.max_nodes:
            raise _TooBig(
                f"more than {self.limits.max_nodes} values once aliases are expanded: not read",
                node.start_mark,
            )
        if len(path) > self.limits.max_depth:
            raise _TooBig(f"nested deeper than {self.limits.max_depth} levels", node.start_mark)
        self.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            self.issue(
                node, path, "an alias refers to the collection that contains it", replaced=True
            )
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            return self.sequence(node, path)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        if node.tag == f"{_CORE}timestamp":
            return node.value  # a date stays the text it was written as
        if node.tag not in _JSON_SCALARS:
            self.issue(
                node,
                path,
                f"YAML tag {_tag(node)} is not supported: write a plain value",
                replaced=True,
            )
            return None
        try:
            value = _SCALARS.construct_object(node)
        except (ValueError, yaml.YAMLError) as exc:  # e.g. an integer of more than 4300 digits
            reason = str(exc).split(":")[0].split(";")[0]
            self.issue(
                node, path, f"cannot read value {short(node.value)}: {reason}", replaced=True
            )
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.issue(node, path, f"expected a finite number, got {node.value}", replaced=True)
            return None
        return value

    def sequence(self, node: yaml.SequenceNode, path: Path_) -> list[Any]:
        if node.tag != f"{_CORE}seq":
            self.issue(node, path, f"YAML tag {_tag(node)} is not supported: write a plain list")
        return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        if node.tag != f"{_CORE}map":
            self.issue(node, path, f"YAML tag {_tag(node)} is not supported: write a plain mapping")
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node, path)
            if key is None:
                continue
            child = (*path, key)
            if key in out:
                self.issue(key_node, child, f"duplicate key {short(key)}")
            # Scalars are located at their value, collections at their key (the value starts a line later).
            at = value_node if isinstance(value_node, yaml.ScalarNode) else key_node
            self.key_marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            self.marks[child] = (at.start_mark.line + 1, at.start_mark.column + 1)
            out[key] = self.value(value_node, child)
        return out

    def key(self, node: yaml.Node, path: Path_) -> str | None:
        self.count += 1
        if node.tag == f"{_CORE}merge":
            self.issue(node, path, "merge keys (<<) are not supported: write the keys out")
            return None
        if isinstance(node, yaml.ScalarNode) and node.tag == f"{_CORE}str":
            return node.value
        if isinstance(node, yaml.ScalarNode) and node.tag in _JSON_SCALARS:
            what = f"{short(node.value)} (read as {node.tag.removeprefix(_CORE)})"
            self.issue(node, path, f"keys must be strings, got {what}: quote it")
        else:
            self.issue(node, path, "keys must be strings, got a list, a mapping or a tagged value")
        return None


# -- JSON Schema -----------------------------------------------------------------------------


@cache
def load_schema(name: str) -> Mapping[str, Any]:
    return json.loads((data_dir("schema") / name).read_text())


def _full_pattern(validator, pattern, instance, schema):  # noqa: ANN001
    """`pattern` as JSON Schema means it: Python's `$` would also match before a final newline."""
    if not validator.is_type(instance, "string"):
        return
    strict = (
        pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern
    )
    if re.search(strict, instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _unique_items(validator, unique, instance, schema):  # noqa: ANN001
    """uniqueItems in linear time (jsonschema's fallback for unhashable items is quadratic)."""
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[str] = set()
    for item in instance:
        key = json.dumps(_canonical(item), sort_keys=True)
        if key in seen:
            yield jsonschema.ValidationError(f"{short(instance)} has non-unique elements")
            return
        seen.add(key)


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _full_pattern, "uniqueItems": _unique_items}
)


def matches(pattern: str, value: str) -> bool:
    """Whether `value` matches a schema pattern, anchored the way JSON Schema anchors it."""
    return not any(_full_pattern(_Validator({}), pattern, value, {}))


def schema_issues(loaded: LoadedYaml, schema: Mapping[str, Any]) -> list[ManifestIssue]:
    validator = _Validator(schema)
    issues = [
        issue
        for error in _leaf_errors(validator.iter_errors(loaded.data))
        for issue in _issues(loaded, error)
    ]
    issues = sorted(
        set(issues), key=lambda i: (i.location.line or 0, i.location.column or 0, i.message)
    )
    return list(capped(issues, loaded.file))


def _leaf_errors(
    errors: Iterator[jsonschema.ValidationError],
) -> Iterator[jsonschema.ValidationError]:
    """For oneOf/anyOf, report the best-matching branch's error instead of the umbrella."""
    for error in errors:
        if error.validator in ("oneOf", "anyOf") and error.context:
            yield jsonschema.exceptions.best_match(error.context)
        else:
            yield error


def _issues(loaded: LoadedYaml, error: jsonschema.ValidationError) -> list[ManifestIssue]:
    path: Path_ = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        expected = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return [
            ManifestIssue(
                location=loaded.location((*path, key), key=True),
                message=f"unknown key {short(key)}{did_you_mean(key, allowed)}{expected}",
            )
            for key in _unexpected_keys(error)
        ]
    if "propertyNames" in error.schema_path and isinstance(error.instance, str):
        path = (*path, error.instance)  # a bad key: point at it, not at its mapping
        return [ManifestIssue(location=loaded.location(path, key=True), message=_humanise(error))]
    return [ManifestIssue(location=loaded.location(path), message=_humanise(error))]


def load_checked(
    path: str | Path,
    schema_name: str | Callable[[Any], str],
    *,
    limits: Limits = DEFAULT_LIMITS,
    what: str = "",
) -> LoadedYaml:
    """Read, parse and schema-check one input file, or raise one ManifestError with every issue.

    `schema_name` may be a function of the parsed data, for files of more than one kind.
    """
    file = str(path)
    problem = file_problem(path, what=what or "file")
    if problem:
        raise ManifestError([_at(file, None, None, problem)], file=file, what=what)
    loaded = load_file(path, limits=limits)
    issues = list(loaded.issues)
    if loaded.data is None and not issues:
        issues.append(_at(file, None, None, f"the {what or 'file'} is empty"))
    if loaded.data is not None:
        name = schema_name(loaded.data) if callable(schema_name) else schema_name
        issues += loaded.schema_issues(load_schema(name))
    if issues:
        raise ManifestError(capped(issues, file), file=file, what=what)
    return loaded


def _unexpected_keys(error: jsonschema.ValidationError) -> list[str]:
    allowed = set(error.schema.get("properties", {}))
    patterns = list(error.schema.get("patternProperties", {}))
    return (
        sorted(
            k
            for k in error.instance
            if k not in allowed and not any(re.search(p, k) for p in patterns)
        )
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
    return f"{type(value).__name__} {short(value)}"


def _case_hint(value: Any, pattern: str) -> str:
    """' (did you mean "cpu"?)' for 'CPU' or 'cpu\\n' when the cleaned-up value would be valid."""
    if not isinstance(value, str) or len(value) > 255:
        return ""
    cleaned = value.strip().lower()
    return f' (did you mean "{cleaned}"?)' if cleaned != value and matches(pattern, cleaned) else ""


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
        return f"expected one of {', '.join(map(str, schema['enum']))}, got {short(value)}{hint}"
    if kind == "const":
        return f"expected {schema['const']!r}, got {short(value)}"
    if kind == "pattern":
        what = expected or "a value matching " + schema["pattern"]
        return f"{short(value)} is not valid: expected {what}{_case_hint(value, schema['pattern'])}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {
            "minimum": ">=",
            "maximum": "<=",
            "exclusiveMinimum": ">",
            "exclusiveMaximum": "<",
        }[kind]
        return f"expected a number {bound} {schema[kind]}, got {short(value)}"
    if kind == "minItems":
        return f"expected at least {schema['minItems']} item(s), got {len(value)}"
    if kind == "maxItems":
        return f"expected at most {schema['maxItems']} item(s), got {len(value)}"
    if kind == "uniqueItems":
        return f"items must be unique, got {short(value)}"
    if kind in ("minProperties", "not"):
        return f"expected {expected or 'at least one key'}, got {_describe(value)}"
    if kind == "minLength":
        return "must not be empty"
    if kind == "maxLength":
        return f"at most {schema['maxLength']} characters, got {len(value)}"
    if kind == "propertyNames":
        return f"{error.message}"
    return error.message if len(error.message) <= 200 else error.message[:195] + "..."


def _tag(node: yaml.Node) -> str:
    """A tag as written: '!!binary' rather than 'tag:yaml.org,2002:binary'."""
    tag = node.tag
    return short("!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag)

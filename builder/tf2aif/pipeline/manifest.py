"""Stage 1, validate: tf2aif.yaml -> Manifest (frozen) + warnings.

YAML (with positions) -> JSON Schema -> checks on the files it names -> Manifest. Every problem
found is collected and raised together as one ManifestError; nothing after this stage reads YAML.

One module: stage 1 of the flow; its frozen values, the checks on the files the manifest names and
the defaults read from the schema belong to one stage.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tf2aif.errors import ManifestError, ManifestIssue, SourceLocation, did_you_mean
from tf2aif.image.convert.spec import OutputThresholds, PluginRef, Thresholds
from tf2aif.pipeline.digests import tree_digest
from tf2aif.pipeline.recipes import RecipeSet
from tf2aif.pipeline.yamlfile import (
    LoadedYaml,
    file_problem,
    load_file,
    load_schema,
    read_text,
    short,
)

__all__ = [
    "DEFAULT_MANIFEST",
    "CellPattern",
    "FidelityOverride",
    "Manifest",
    "ModelRef",
    "ServeSettings",
    "Targets",
    "load_manifest",
    "output_thresholds",
    "schema_default",
]

DEFAULT_MANIFEST = "tf2aif.yaml"
MANIFEST_SCHEMA = "tf2aif.schema.json"


@dataclass(frozen=True, kw_only=True)
class CellPattern:
    """An include/exclude entry; None matches anything."""

    platform: str | None = None
    runtime: str | None = None
    precision: str | None = None
    path: str = ""  # field path in the manifest, for error messages

    def matches(self, platform: str, runtime: str, precision: str) -> bool:
        return all(
            want is None or want == got
            for want, got in (
                (self.platform, platform),
                (self.runtime, runtime),
                (self.precision, precision),
            )
        )


@dataclass(frozen=True, kw_only=True)
class Targets:
    platforms: tuple[str, ...]
    runtimes: tuple[str, ...]
    precisions: tuple[str, ...]
    exclude: tuple[CellPattern, ...] = ()
    include: tuple[CellPattern, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    path: str  # as written, relative to the manifest
    signature: str
    kind: str  # savedmodel | keras
    digest: str  # sha256:... over the model files


@dataclass(frozen=True, kw_only=True)
class FidelityOverride:
    match: CellPattern
    thresholds: Thresholds


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    max_batch_size: int
    max_queue_delay_ms: float
    max_queue_size: int
    threads: int | None = None  # None: the server uses every CPU


@dataclass(frozen=True, kw_only=True)
class Manifest:
    file: Path
    root: Path  # the folder holding the manifest; every path is relative to it
    name: str
    description: str
    model: ModelRef
    processing: str | None
    calibration: PluginRef | None
    targets: Targets
    thresholds: Thresholds
    fidelity_samples: PluginRef | None
    fidelity_overrides: tuple[FidelityOverride, ...]
    registry: str
    tags: tuple[str, ...]
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    serve: ServeSettings
    client: bool = False  # also build the bench client image
    loaded: LoadedYaml | None = field(
        default=None, compare=False, repr=False
    )  # for located errors later

    def location(self, path: tuple[str | int, ...], *, key: bool = False) -> SourceLocation:
        if self.loaded is None:
            return SourceLocation(file=str(self.file), path=".".join(map(str, path)))
        return self.loaded.location(path, key=key)


def load_manifest(
    path: str | Path = DEFAULT_MANIFEST, *, recipes: RecipeSet | None = None
) -> tuple[Manifest, tuple[str, ...]]:
    """The manifest at `path`, or one ManifestError holding every problem found.

    With `recipes`, the names (platforms, runtimes, options) and the matrix are checked too, so
    schema, file, name and matrix problems are reported together.
    """
    file = _manifest_file(Path(path))
    problem = file_problem(file, what="manifest")
    if problem:
        message = "manifest not found" if "does not exist" in problem else problem
        raise ManifestError([_issue_at_file(str(file), message)], file=str(file))
    loaded = load_file(file)
    issues = list(loaded.issues)
    if loaded.data is None and not issues:
        issues.append(_issue_at_file(str(file), "the manifest is empty"))
    warnings: list[str] = []
    if loaded.data is not None:
        issues += loaded.schema_issues(load_schema(MANIFEST_SCHEMA))
    if isinstance(loaded.data, Mapping):
        root = file.parent.resolve()
        issues += _check_files(loaded, root)
        issues += _reference_issues(loaded)
        warnings += _plugin_folder_warnings(loaded.data)
        if recipes is not None:
            from tf2aif.pipeline.resolve import (
                raw_issues,  # resolve builds on Manifest: import when used
            )

            issues += raw_issues(loaded, recipes, known=issues)
    if issues:
        ordered = sorted(set(issues), key=lambda i: (i.location.line or 0, i.location.column or 0))
        raise ManifestError(ordered, file=str(file))
    return _build(loaded, file), tuple(warnings)


def _manifest_file(path: Path) -> Path:
    try:
        return path / DEFAULT_MANIFEST if path.is_dir() else path
    except (OSError, ValueError):  # too long a name or a NUL: file_problem says so
        return path


def _issue_at_file(file: str, message: str) -> ManifestIssue:
    return ManifestIssue(location=SourceLocation(file=file), message=message)


def _get(data: Any, *path: str) -> Any:
    """data[path...] when every step is a mapping that has it, else None."""
    for part in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


# -- Docker's limits on the references the manifest makes ----------------------------------

NAME_TOTAL_MAX = 255  # distribution/reference: NameTotalLengthMax, registry/name included
TAG_MAX = 128  # distribution/reference: tag = [\w][\w.-]{0,127}


def _reference_issues(loaded: LoadedYaml) -> list[ManifestIssue]:
    data = loaded.data
    name, registry = data.get("name"), data.get("registry")
    if not isinstance(name, str) or not isinstance(registry, str):
        return []
    image = f"{registry}/{name}-bench"  # the longest image name a manifest makes
    if len(image) <= NAME_TOTAL_MAX:
        return []
    message = (
        f"registry and name make image names of up to {len(image)} characters ({short(image)});"
        f" Docker allows at most {NAME_TOTAL_MAX}"
    )
    return [ManifestIssue(location=loaded.location(("registry",)), message=message)]


# -- checks on the files the manifest names ------------------------------------------------


def _check_files(loaded: LoadedYaml, root: Path) -> list[ManifestIssue]:
    data = loaded.data
    issues = _check_model(loaded, root) if isinstance(_get(data, "model", "path"), str) else []
    if isinstance(_get(data, "processing", "module"), str):
        issues += _check_module(
            loaded, root, ("processing", "module"), ("preprocess", "postprocess")
        )
    for section in (("calibration",), ("fidelity", "samples")):
        module, function = _get(data, *section, "module"), _get(data, *section, "function")
        if isinstance(module, str) and isinstance(function, str | None):
            issues += _check_module(
                loaded,
                root,
                (*section, "module"),
                (function or schema_default("calibration", "function"),),
                function_path=(*section, "function"),
            )
    return issues


def _plugin_folder_warnings(data: Mapping[str, Any]) -> list[str]:
    modules = [
        _get(data, "processing", "module"),
        _get(data, "calibration", "module"),
        _get(data, "fidelity", "samples", "module"),
    ]
    if any(isinstance(m, str) and m and "/" not in m.strip("./") for m in modules):
        return [
            "plug-in modules sit next to the manifest, so the whole folder becomes the plug-in build "
            "context and is copied into every artifact; move them into a subfolder such as app/"
        ]
    return []


def _check_model(loaded: LoadedYaml, root: Path) -> list[ManifestIssue]:
    where = loaded.location(("model", "path"))
    written = loaded.data["model"]["path"]
    model = root / written
    problem = file_problem(model, what="model path", folder_ok=True)
    if "does not exist" in problem and written == "models/digits":
        problem += " (for the demo, run: python examples/digits/train.py)"
    if problem:
        return [ManifestIssue(location=where, message=problem)]
    if model.is_dir():
        pb = file_problem(model / "saved_model.pb")
        if pb:
            return [
                ManifestIssue(
                    location=where,
                    message=f"{str(model)!r} is a folder without saved_model.pb (as a regular file);"
                    " expected a SavedModel folder or a .keras file",
                )
            ]
        return []
    if model.suffix != ".keras":
        return [
            ManifestIssue(
                location=where,
                message=f"{str(model)!r}: expected a SavedModel folder or a .keras file, got a {model.suffix or 'suffix-less'} file",
            )
        ]
    return []


def _check_module(
    loaded: LoadedYaml,
    root: Path,
    path: tuple[str, ...],
    functions: tuple[str, ...],
    *,
    function_path: tuple[str, ...] | None = None,
) -> list[ManifestIssue]:
    """The module exists, parses, and defines the functions (read with ast: nothing user-written runs here)."""
    value = _get(loaded.data, *path)
    where = loaded.location(path)
    module = root / value
    problem = file_problem(module, what="module")
    if problem:
        return [ManifestIssue(location=where, message=problem)]
    text, unreadable = read_text(module)
    if unreadable:
        message = f"module {value!r}: {unreadable[0].message} (at {unreadable[0].location})"
        return [ManifestIssue(location=where, message=message)]
    try:
        tree = ast.parse(text, filename=str(module))
    except SyntaxError as exc:
        return [
            ManifestIssue(
                location=where,
                message=f"module {value!r} does not import: SyntaxError at line {exc.lineno}: {exc.msg}",
            )
        ]
    except (ValueError, RecursionError, MemoryError) as exc:
        message = f"module {value!r} does not import: {type(exc).__name__}"
        return [ManifestIssue(location=where, message=message)]
    defined = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    defined |= {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    defined |= {
        a.asname or a.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for a in node.names
    }
    missing = [f for f in functions if f not in defined]
    if not missing:
        return []
    at = loaded.location(function_path) if function_path else where
    hint = did_you_mean(missing[0], defined)
    return [
        ManifestIssue(
            location=at, message=f"module {value!r} defines no function {missing[0]!r}{hint}"
        )
    ]


# -- raw data -> Manifest ------------------------------------------------------------------


def _build(loaded: LoadedYaml, file: Path) -> Manifest:
    data, root = loaded.data, file.parent.resolve()
    fidelity = data.get("fidelity", {})
    return Manifest(
        file=file,
        root=root,
        name=data["name"],
        description=data.get("description", ""),
        model=_model(data["model"], root),
        processing=data.get("processing", {}).get("module"),
        calibration=_plugin(data.get("calibration")),
        targets=_targets(data["targets"]),
        thresholds=_thresholds(fidelity),
        fidelity_samples=_plugin(fidelity.get("samples")),
        fidelity_overrides=tuple(
            FidelityOverride(
                match=_pattern(o["match"], f"fidelity.overrides[{i}].match"),
                thresholds=_thresholds(o),
            )
            for i, o in enumerate(fidelity.get("overrides", []))
        ),
        registry=data.get("registry", ""),
        tags=tuple(data.get("tags", [])),
        options=MappingProxyType(
            {k: MappingProxyType(dict(v)) for k, v in sorted(data.get("options", {}).items())}
        ),
        serve=_serve(data.get("serve", {})),
        client=bool(data.get("client", {}).get("enabled", schema_default("client", "enabled"))),
        loaded=loaded,
    )


def _model(block: Mapping[str, Any], root: Path) -> ModelRef:
    path = root / block["path"]
    return ModelRef(
        path=block["path"],
        signature=block.get("signature", schema_default("model", "signature")),
        kind="keras" if path.is_file() else "savedmodel",
        digest=tree_digest(path),
    )


def _plugin(block: Mapping[str, Any] | None) -> PluginRef | None:
    if block is None:
        return None
    return PluginRef(
        module=block["module"],
        function=block.get("function", schema_default("calibration", "function")),
        count=block.get("count", schema_default("calibration", "count")),
    )


def _serve(block: Mapping[str, Any]) -> ServeSettings:
    names = ("max_batch_size", "max_queue_delay_ms", "max_queue_size")
    return ServeSettings(**{**{name: schema_default("serve", name) for name in names}, **block})


@cache
def schema_default(*path: str) -> Any:
    """The `default` tf2aif.schema.json gives the manifest field at `path` (its one home).

    `path` is property names from the top, e.g. ("serve", "max_batch_size"); `$ref`s are followed.
    """
    schema = load_schema(MANIFEST_SCHEMA)
    node: Mapping[str, Any] = schema
    for name in path:
        node = _deref(schema, node)["properties"][name]
    return _deref(schema, node)["default"]


def _deref(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        target: Any = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _thresholds(block: Mapping[str, Any]) -> Thresholds:
    keys = ("atol", "rtol", "min_top1_agreement", "max_accuracy_drop")
    named = {"class_output": str(block["class_output"])} if "class_output" in block else {}
    if "fallback" in block:
        named["fallback"] = bool(block["fallback"])
    return Thresholds(
        **{k: float(block[k]) for k in keys if k in block},
        **named,
        outputs=output_thresholds(block.get("outputs", {})),
    )


def output_thresholds(block: Mapping[str, Mapping[str, Any]]) -> tuple[OutputThresholds, ...]:
    """`fidelity.outputs` (name -> {atol, rtol}), sorted by output name."""
    return tuple(
        OutputThresholds(
            name=str(name), **{k: float(limits[k]) for k in ("atol", "rtol") if k in limits}
        )
        for name, limits in sorted(block.items())
    )


def _pattern(block: Mapping[str, Any], path: str) -> CellPattern:
    return CellPattern(
        platform=block.get("platform"),
        runtime=block.get("runtime"),
        precision=block.get("precision"),
        path=path,
    )


def _targets(block: Mapping[str, Any]) -> Targets:
    return Targets(
        platforms=tuple(block["platforms"]),
        runtimes=tuple(block["runtimes"]),
        precisions=tuple(block["precisions"]),
        exclude=tuple(
            _pattern(p, f"targets.exclude[{i}]") for i, p in enumerate(block.get("exclude", []))
        ),
        include=tuple(
            _pattern(p, f"targets.include[{i}]") for i, p in enumerate(block.get("include", []))
        ),
    )

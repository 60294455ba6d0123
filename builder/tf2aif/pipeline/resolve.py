"""Stage 2, resolve: Manifest x RecipeSet x overrides -> Resolution (pure).

Expands the matrix (platforms x runtimes x precisions, minus exclude, plus include) and looks up
the recipe of every cell. Unsupported cells are kept with the reason they were skipped; a cell
the user asked for by name (include) that no recipe supports is an error. Given the model's facts
(model_inspect), cells a runtime is known not to convert are skipped the same way, with the fix.
Option precedence, lowest first: recipe defaults < manifest `options.<runtime>`; vendor images:
recipe < vendor map.

One module: the matrix expansion, the include checks and the name checks share the cell, order
and location helpers, and `raw_issues` (validate) must judge the matrix exactly as resolve does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from tf2aif.errors import ManifestError, ManifestIssue, SourceLocation, did_you_mean
from tf2aif.image.convert.spec import Thresholds
from tf2aif.pipeline.manifest import TAG_MAX, CellPattern, Manifest, Targets, _targets
from tf2aif.pipeline.model_inspect import (
    ModelFacts,
    Prediction,
    notes,
    option_issues,
    predict,
)
from tf2aif.pipeline.recipes import ImageRef, Recipe, RecipeSet
from tf2aif.pipeline.yamlfile import LoadedYaml, matches, short

__all__ = [
    "Resolution",
    "SkippedCell",
    "Variant",
    "name_issues",
    "output_name_issues",
    "raw_issues",
    "resolve",
]


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One matrix cell that will be built: platform x runtime x precision, with its recipe."""

    platform: str
    runtime: str
    precision: str
    recipe: str
    oci_platform: str
    accelerator: str | None
    backend: str
    converter_input: str
    converter_image: ImageRef
    runtime_image: ImageRef
    options: Mapping[str, Any] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.platform}/{self.runtime}/{self.precision}"


@dataclass(frozen=True, kw_only=True)
class SkippedCell:
    platform: str
    runtime: str
    precision: str
    reason: str
    fix: str = ""  # what to change so the cell builds, when the model itself rules it out
    by_model: bool = False  # ruled out by the model's facts, not by the recipes or an exclude

    @property
    def id(self) -> str:
        return f"{self.platform}/{self.runtime}/{self.precision}"


@dataclass(frozen=True, kw_only=True)
class Resolution:
    manifest: Manifest
    variants: tuple[Variant, ...]
    skipped: tuple[SkippedCell, ...]
    vendor_map: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what a runtime does differently for this model (model_inspect)


def resolve(
    manifest: Manifest,
    recipes: RecipeSet,
    *,
    vendor_map: Mapping[str, str] | None = None,
    model_facts: ModelFacts | None = None,
) -> Resolution:
    """`model_facts` (None when the model could not be inspected) skips the cells it rules out."""
    vendor_map = MappingProxyType(dict(vendor_map or {}))
    issues = name_issues(_raw(manifest), recipes, manifest.location)
    if issues:
        raise ManifestError(issues, file=str(manifest.file))
    t = manifest.targets
    runtimes = {*t.runtimes, *(p.runtime for p in t.include)}
    keras_source = manifest.model.kind == "keras"
    predictions = (
        predict(model_facts, runtimes, options=manifest.options, keras_source=keras_source)
        if model_facts
        else ()
    )
    cells, skipped, issues = _cells(t, recipes, manifest.location, predictions)
    issues += [
        ManifestIssue(
            location=manifest.location(("options", i.runtime, i.option)), message=i.message
        )
        for i in option_issues(model_facts, manifest.options, keras_source=keras_source)
        if i.runtime in runtimes
    ]
    variants = {cell: _variant(manifest, recipes, cell, vendor_map) for cell in cells}
    issues += _needs_calibration(
        manifest.targets, manifest.calibration is not None, cells, manifest.location
    )
    issues += output_name_issues(manifest, model_facts)
    issues += _tag_issues(manifest, variants.values())
    if not variants and not issues:
        issues.append(_empty(manifest.location))
    if issues:
        raise ManifestError(issues, file=str(manifest.file))
    ordered = tuple(sorted(variants.values(), key=lambda v: _order(manifest, v)))
    skipped_sorted = tuple(sorted(skipped, key=lambda s: _order(manifest, s)))
    return Resolution(
        manifest=manifest,
        variants=ordered,
        skipped=skipped_sorted,
        vendor_map=vendor_map,
        notes=notes(model_facts, {v.runtime for v in ordered}),
    )


Locate = Callable[..., SourceLocation]  # (path, *, key=False) -> where it was written
Cell = tuple[str, str, str]


def raw_issues(
    loaded: LoadedYaml, recipes: RecipeSet, *, known: Sequence[ManifestIssue]
) -> list[ManifestIssue]:
    """Name and matrix problems of a manifest that may also hold schema or file problems.

    Names are checked wherever they are well-formed; the matrix once the parts it is made of
    (`targets`, `calibration`) are free of problems, so it is never judged on a misread part.
    """
    issues = name_issues(loaded.data, recipes, loaded.location)
    blocked = [i.location.path for i in (*known, *issues)]
    if any(
        p in ("", "targets", "calibration")
        or p.startswith(("targets.", "targets[", "calibration."))
        for p in blocked
    ):
        return issues
    targets = _targets(loaded.data["targets"])
    cells, _, matrix = _cells(targets, recipes, loaded.location)
    matrix += _needs_calibration(targets, "calibration" in loaded.data, cells, loaded.location)
    if not cells and not matrix:
        matrix.append(_empty(loaded.location))
    return issues + matrix


def _cells(
    targets: Targets,
    recipes: RecipeSet,
    locate: Locate,
    predictions: Sequence[Prediction] = (),
) -> tuple[list[Cell], list[SkippedCell], list[ManifestIssue]]:
    """The cells to build (matrix minus exclude, unsupported and ruled out by the model, plus
    include), the skipped ones with their reasons, and the include entries that cannot build."""
    cells: dict[Cell, None] = {}
    skipped: list[SkippedCell] = []
    issues: list[ManifestIssue] = []
    for cell in itertools.product(targets.platforms, targets.runtimes, targets.precisions):
        excluded = next((p for p in targets.exclude if p.matches(*cell)), None)
        reason = f"excluded by {excluded.path}" if excluded else _unsupported(recipes, *cell)
        ruled_out = None if reason else _ruled_out(predictions, cell)
        if reason:
            skipped.append(
                SkippedCell(platform=cell[0], runtime=cell[1], precision=cell[2], reason=reason)
            )
        elif ruled_out:
            skipped.append(ruled_out)
        else:
            cells[cell] = None
    for pattern in targets.include:
        cell = (pattern.platform, pattern.runtime, pattern.precision)
        reason = _unsupported(recipes, *cell)
        ruled_out = None if reason else _ruled_out(predictions, cell)
        if ruled_out:
            reason = f"the model has {ruled_out.reason}; fix: {ruled_out.fix}"
        if reason:
            message = f"{'/'.join(cell)} cannot be built: {reason}"
            issues.append(
                ManifestIssue(location=locate(_parse_path(pattern.path)), message=message)
            )
            continue
        cells[cell] = None
        skipped = [s for s in skipped if (s.platform, s.runtime, s.precision) != cell]
    return list(cells), skipped, issues


def _ruled_out(predictions: Sequence[Prediction], cell: Cell) -> SkippedCell | None:
    """The skip for a cell the model's facts rule out (every reason given for its runtime)."""
    found = [p for p in predictions if p.runtime == cell[1]]
    if not found:
        return None
    return SkippedCell(
        platform=cell[0],
        runtime=cell[1],
        precision=cell[2],
        reason="; ".join(p.reason for p in found),
        fix="; ".join(p.fix for p in found),
        by_model=True,
    )


def _empty(locate: Locate) -> ManifestIssue:
    return ManifestIssue(
        location=locate(("targets",)),
        message="the matrix is empty: every cell was excluded, is unsupported or is ruled out by the model (see `tf2aif plan`)",
    )


def _order(manifest: Manifest, cell: Variant | SkippedCell) -> tuple:
    """Manifest order (as written), then names: stable and what the user expects to read."""
    t = manifest.targets

    def rank(seq: tuple[str, ...], value: str) -> tuple[int, str]:
        return (seq.index(value), value) if value in seq else (len(seq), value)

    return (
        rank(t.platforms, cell.platform),
        rank(t.runtimes, cell.runtime),
        rank(t.precisions, cell.precision),
    )


def _unsupported(recipes: RecipeSet, platform: str, runtime: str, precision: str) -> str:
    recipe = recipes.serving(runtime, platform)
    if recipe is None:
        where = recipes.platforms_of(runtime)
        return f"no recipe serves {runtime} on {platform} ({runtime} runs on: {', '.join(where) or 'nothing'})"
    if precision not in recipe.precisions:
        return recipe.reasons.get(precision) or (
            f"recipe {recipe.name} supports {', '.join(recipe.precisions)}, not {precision}"
        )
    return ""


def _variant(
    manifest: Manifest,
    recipes: RecipeSet,
    cell: tuple[str, str, str],
    vendor_map: Mapping[str, str],
) -> Variant:
    platform, runtime, precision = cell
    recipe: Recipe = recipes.serving(runtime, platform)  # type: ignore[assignment]
    info = recipes.platforms[platform]
    options = {**recipe.options, **manifest.options.get(runtime, {})}
    converter_image, runtime_image = recipe.converter, recipe.platforms[platform]
    labels = dict(recipe.labels)
    for option, images in recipe.option_images.items():
        if options.get(option) is True:  # later options in name order win a clash
            converter_image, runtime_image = images.converter, images.platforms[platform]
            labels |= {**images.labels, f"io.tf2aif.option.{option}": images.reason}
    return Variant(
        platform=platform,
        runtime=runtime,
        precision=precision,
        recipe=recipe.name,
        oci_platform=info.oci,
        accelerator=info.accelerator,
        backend=recipe.backend,
        converter_input=recipe.converter_input,
        converter_image=_mapped(converter_image, vendor_map),
        runtime_image=_mapped(runtime_image, vendor_map),
        options=MappingProxyType(dict(sorted(options.items()))),
        thresholds=_thresholds_for(manifest, cell),
        labels=MappingProxyType(dict(sorted(labels.items()))),
    )


def _mapped(ref: ImageRef, vendor_map: Mapping[str, str]) -> ImageRef:
    return replace(ref, vendor=vendor_map.get(ref.vendor, ref.vendor))


def _thresholds_for(manifest: Manifest, cell: tuple[str, str, str]) -> Thresholds:
    thresholds = manifest.thresholds
    for override in manifest.fidelity_overrides:
        if override.match.matches(*cell):
            changed = {k: v for k, v in vars(override.thresholds).items() if v not in (None, ())}
            thresholds = replace(thresholds, **changed)
    return thresholds


def output_name_issues(manifest: Manifest, facts: ModelFacts | None) -> list[ManifestIssue]:
    """`fidelity.class_output` and `fidelity.outputs` name outputs the model has."""
    if facts is None:
        return []
    names = [tensor.name for tensor in facts.outputs]
    named: list[tuple[tuple[str, ...], str]] = [
        (("fidelity", "outputs", o.name), o.name) for o in manifest.thresholds.outputs
    ]
    if manifest.thresholds.class_output is not None:
        named.insert(0, (("fidelity", "class_output"), manifest.thresholds.class_output))
    return [
        ManifestIssue(
            location=manifest.location(path, key=path[-1] != "class_output"),
            message=f"{name!r} is not an output of the model{did_you_mean(name, names)}; "
            f"its outputs are: {', '.join(names)}",
        )
        for path, name in named
        if name not in names
    ]


def _needs_calibration(
    targets: Targets, has_calibration: bool, cells: Sequence[Cell], locate: Locate
) -> list[ManifestIssue]:
    if has_calibration:
        return []
    int8 = [c for c in cells if c[2] == "int8"]
    if not int8:
        return []
    path: tuple[str | int, ...] = ("targets",)
    if "int8" in targets.precisions:
        path = ("targets", "precisions", targets.precisions.index("int8"))
    else:
        found = next((p.path for p in targets.include if p.precision == "int8"), None)
        path = _parse_path(found) if found else path
    message = (
        f"int8 variants ({', '.join('/'.join(c) for c in int8)}) need calibration data: add "
        "`calibration: {module: <file.py>, function: <name>, count: 200}`"
    )
    return [ManifestIssue(location=locate(path), message=message)]


def _tag_issues(manifest: Manifest, variants) -> list[ManifestIssue]:
    """Every tag the plan will make fits Docker's 128 characters (tags end in the image's cells)."""
    groups: dict[tuple, list[str]] = {}
    for v in variants:
        key = (
            v.runtime,
            v.precision,
            v.converter_input,
            v.runtime_image.base,
            v.runtime_image.vendor,
        )
        groups.setdefault(key, [])
        if v.platform not in groups[key]:
            groups[key].append(v.platform)
    longest = max(
        (len("-".join((key[0], key[1], *names))) for key, names in groups.items()), default=0
    )
    issues = []
    content_tag = longest + 13  # <human>-<12 hex digits>
    if content_tag > TAG_MAX:
        message = f"the image tags would be {content_tag} characters long; Docker allows {TAG_MAX}: list fewer platforms"
        issues.append(
            ManifestIssue(location=manifest.location(("targets", "platforms")), message=message)
        )
    for i, tag in enumerate(manifest.tags):
        if len(tag) + 1 + longest > TAG_MAX:
            message = (
                f"tag {short(tag)} makes image tags of {len(tag) + 1 + longest} characters"
                f" (<tag>-<runtime>-<precision>-<platforms>); Docker allows {TAG_MAX}"
            )
            issues.append(ManifestIssue(location=manifest.location(("tags", i)), message=message))
    return issues


def _issue(manifest: Manifest, dotted_path: str, message: str) -> ManifestIssue:
    return ManifestIssue(location=manifest.location(_parse_path(dotted_path)), message=message)


def _parse_path(dotted_path: str) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for part in dotted_path.replace("]", "").split("."):
        name, *indexes = part.split("[")
        out += [name, *(int(i) for i in indexes)]
    return tuple(out)


def _raw(manifest: Manifest) -> Mapping[str, Any]:
    """The manifest as written (for name checks located at what the user wrote)."""
    if manifest.loaded is not None and isinstance(manifest.loaded.data, Mapping):
        return manifest.loaded.data
    t = manifest.targets

    def cell(p: CellPattern) -> dict[str, str]:
        return {k: getattr(p, k) for k in ("platform", "runtime", "precision") if getattr(p, k)}

    return {
        "targets": {
            "platforms": list(t.platforms),
            "runtimes": list(t.runtimes),
            "exclude": [cell(p) for p in t.exclude],
            "include": [cell(p) for p in t.include],
        },
        "fidelity": {"overrides": [{"match": cell(o.match)} for o in manifest.fidelity_overrides]},
        "options": {k: dict(v) for k, v in manifest.options.items()},
    }


def name_issues(data: Any, recipes: RecipeSet, locate: Locate) -> list[ManifestIssue]:
    """Platform, runtime and option names checked against the recipe set, wherever they appear."""
    known = {"platform": tuple(recipes.platforms), "runtime": recipes.runtimes}
    found: list[tuple[str, tuple[str | int, ...], Any]] = []  # (kind, path, name)
    targets = data.get("targets") if isinstance(data, Mapping) else None
    targets = targets if isinstance(targets, Mapping) else {}
    for kind in ("platform", "runtime"):
        names = targets.get(kind + "s")
        if isinstance(names, list):
            found += [(kind, ("targets", kind + "s", i), n) for i, n in enumerate(names)]
    patterns: list[tuple[tuple[str | int, ...], Any]] = []
    for key in ("exclude", "include"):
        entries = targets.get(key)
        if isinstance(entries, list):
            patterns += [(("targets", key, i), e) for i, e in enumerate(entries)]
    overrides = _dig(data, "fidelity", "overrides")
    if isinstance(overrides, list):
        patterns += [
            (("fidelity", "overrides", i, "match"), _dig(o, "match"))
            for i, o in enumerate(overrides)
        ]
    for path, entry in patterns:
        if isinstance(entry, Mapping):
            found += [(k, (*path, k), entry.get(k)) for k in ("platform", "runtime") if k in entry]
    issues = [
        _unknown(locate(path), kind, name, known[kind])
        for kind, path, name in found
        if isinstance(name, str) and name not in known[kind] and _well_formed(name)
    ]
    options = _dig(data, "options")
    for runtime, values in options.items() if isinstance(options, Mapping) else ():
        if runtime not in known["runtime"]:
            issues.append(
                _unknown(locate(("options", runtime)), "runtime", runtime, known["runtime"])
            )
        elif isinstance(values, Mapping):
            accepted = recipes.option_names(runtime)
            defaults = recipes.option_defaults(runtime)
            for name, value in values.items():
                if isinstance(defaults.get(name), bool) and not isinstance(value, bool):
                    issues.append(
                        ManifestIssue(
                            location=locate(("options", runtime, name)),
                            message=f"options.{runtime}.{name} is true or false, not {short(value)}",
                        )
                    )
                if name not in accepted:
                    where = locate(("options", runtime, name), key=True)
                    choices = (
                        ", ".join(accepted) if accepted else f"none ({runtime} takes no options)"
                    )
                    hint = did_you_mean(name, accepted)
                    message = (
                        f"unknown {runtime} option {short(name)}{hint}; expected one of: {choices}"
                    )
                    issues.append(ManifestIssue(location=where, message=message))
    return issues


def _dig(data: Any, *path: str) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def _well_formed(name: str) -> bool:
    """Names the schema already rejects ('CPU', 'cpu\n') get the schema's message, not a second one."""
    return matches("^[a-z0-9][a-z0-9-]*$", name)


def _unknown(
    where: SourceLocation, noun: str, name: str, choices: tuple[str, ...]
) -> ManifestIssue:
    return ManifestIssue(
        location=where,
        message=f"unknown {noun} {short(name)}{did_you_mean(name, choices)}; expected one of: {', '.join(choices)}",
    )

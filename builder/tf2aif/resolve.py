"""Stage 2, resolve: Manifest x RecipeSet x overrides -> Resolution (pure).

Expands the matrix (platforms x runtimes x precisions, minus exclude, plus include) and looks up
the recipe of every cell. Unsupported cells are kept with the reason they were skipped; a cell
the user asked for by name (include) that no recipe supports is an error. Option precedence,
lowest first: recipe defaults < manifest `options.<runtime>`; vendor images: recipe < vendor map.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from tf2aif.convert.spec import Thresholds
from tf2aif.errors import ManifestError, ManifestIssue, did_you_mean
from tf2aif.manifest import CellPattern, Manifest
from tf2aif.recipes import ImageRef, Recipe, RecipeSet

__all__ = ["Resolution", "SkippedCell", "Variant", "resolve"]


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

    @property
    def id(self) -> str:
        return f"{self.platform}/{self.runtime}/{self.precision}"


@dataclass(frozen=True, kw_only=True)
class Resolution:
    manifest: Manifest
    variants: tuple[Variant, ...]
    skipped: tuple[SkippedCell, ...]
    vendor_map: Mapping[str, str] = field(default_factory=dict)


def resolve(
    manifest: Manifest,
    recipes: RecipeSet,
    *,
    vendor_map: Mapping[str, str] | None = None,
) -> Resolution:
    vendor_map = MappingProxyType(dict(vendor_map or {}))
    issues = _unknown_names(manifest, recipes)
    if issues:
        raise ManifestError(issues, file=str(manifest.file))
    variants: dict[tuple[str, str, str], Variant] = {}
    skipped: list[SkippedCell] = []
    for cell in _matrix(manifest):
        excluded = next((p for p in manifest.targets.exclude if p.matches(*cell)), None)
        if excluded:
            skipped.append(
                SkippedCell(
                    platform=cell[0],
                    runtime=cell[1],
                    precision=cell[2],
                    reason=f"excluded by {excluded.path}",
                )
            )
            continue
        reason = _unsupported(recipes, *cell)
        if reason:
            skipped.append(
                SkippedCell(platform=cell[0], runtime=cell[1], precision=cell[2], reason=reason)
            )
            continue
        variants[cell] = _variant(manifest, recipes, cell, vendor_map)
    for pattern in manifest.targets.include:
        cell = (pattern.platform, pattern.runtime, pattern.precision)
        reason = _unsupported(recipes, *cell)
        if reason:
            issues.append(
                _issue(manifest, pattern.path, f"{'/'.join(cell)} cannot be built: {reason}")
            )
            continue
        variants[cell] = _variant(manifest, recipes, cell, vendor_map)
        skipped = [s for s in skipped if (s.platform, s.runtime, s.precision) != cell]
    issues += _needs_calibration(manifest, variants.values())
    if not variants and not issues:
        issues.append(
            _issue(
                manifest,
                "targets",
                "the matrix is empty: every cell was excluded or is unsupported (see `tf2aif plan`)",
            )
        )
    if issues:
        raise ManifestError(issues, file=str(manifest.file))
    ordered = tuple(sorted(variants.values(), key=lambda v: _order(manifest, v)))
    skipped_sorted = tuple(sorted(skipped, key=lambda s: _order(manifest, s)))
    return Resolution(
        manifest=manifest,
        variants=ordered,
        skipped=skipped_sorted,
        vendor_map=vendor_map,
    )


def _matrix(manifest: Manifest):
    t = manifest.targets
    return itertools.product(t.platforms, t.runtimes, t.precisions)


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
    return Variant(
        platform=platform,
        runtime=runtime,
        precision=precision,
        recipe=recipe.name,
        oci_platform=info.oci,
        accelerator=info.accelerator,
        backend=recipe.backend,
        converter_input=recipe.converter_input,
        converter_image=_mapped(recipe.converter, vendor_map),
        runtime_image=_mapped(recipe.platforms[platform], vendor_map),
        options=MappingProxyType(dict(sorted(options.items()))),
        thresholds=_thresholds_for(manifest, cell),
        labels=recipe.labels,
    )


def _mapped(ref: ImageRef, vendor_map: Mapping[str, str]) -> ImageRef:
    return replace(ref, vendor=vendor_map.get(ref.vendor, ref.vendor))


def _thresholds_for(manifest: Manifest, cell: tuple[str, str, str]) -> Thresholds:
    thresholds = manifest.thresholds
    for override in manifest.fidelity_overrides:
        if override.match.matches(*cell):
            changed = {k: v for k, v in vars(override.thresholds).items() if v is not None}
            thresholds = replace(thresholds, **changed)
    return thresholds


def _needs_calibration(manifest: Manifest, variants) -> list[ManifestIssue]:
    if manifest.calibration is not None:
        return []
    int8 = sorted((v for v in variants if v.precision == "int8"), key=lambda v: _order(manifest, v))
    if not int8:
        return []
    path = "targets"
    if "int8" in manifest.targets.precisions:
        path = f"targets.precisions[{manifest.targets.precisions.index('int8')}]"
    else:
        path = next((p.path for p in manifest.targets.include if p.precision == "int8"), path)
    message = (
        f"int8 variants ({', '.join(v.id for v in int8)}) need calibration data: add "
        "`calibration: {module: <file.py>, function: <name>, count: 200}`"
    )
    return [_issue(manifest, path, message)]


def _issue(manifest: Manifest, dotted_path: str, message: str) -> ManifestIssue:
    return ManifestIssue(location=manifest.location(_parse_path(dotted_path)), message=message)


def _parse_path(dotted_path: str) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for part in dotted_path.replace("]", "").split("."):
        name, *indexes = part.split("[")
        out += [name, *(int(i) for i in indexes)]
    return tuple(out)


def _unknown_names(manifest: Manifest, recipes: RecipeSet) -> list[ManifestIssue]:
    issues = []
    known = {"platforms": tuple(recipes.platforms), "runtimes": recipes.runtimes}
    for key, names in (
        ("platforms", manifest.targets.platforms),
        ("runtimes", manifest.targets.runtimes),
    ):
        for i, name in enumerate(names):
            if name not in known[key]:
                issues.append(_unknown(manifest, f"targets.{key}[{i}]", key[:-1], name, known[key]))
    for pattern in (*manifest.targets.exclude, *manifest.targets.include):
        issues += _unknown_in_pattern(manifest, pattern, known)
    for runtime in manifest.options:
        if runtime not in known["runtimes"]:
            issues.append(
                _unknown(manifest, f"options.{runtime}", "runtime", runtime, known["runtimes"])
            )
    return issues


def _unknown_in_pattern(
    manifest: Manifest, pattern: CellPattern, known: Mapping[str, tuple[str, ...]]
) -> list[ManifestIssue]:
    issues = []
    for key in ("platform", "runtime"):
        value = getattr(pattern, key)
        if value is not None and value not in known[key + "s"]:
            issues.append(_unknown(manifest, f"{pattern.path}.{key}", key, value, known[key + "s"]))
    return issues


def _unknown(
    manifest: Manifest, path: str, noun: str, name: str, choices: tuple[str, ...]
) -> ManifestIssue:
    return _issue(
        manifest,
        path,
        f"unknown {noun} {name!r}{did_you_mean(name, choices)}; expected one of: {', '.join(choices)}",
    )

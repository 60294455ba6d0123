"""Recipes: data in recipes/<name>/recipe.yaml (+ recipes/platforms.yaml), checked by schema.

A recipe says which runtime it serves, on which platforms, at which precisions, which converter
backend and base image convert for it, and which runtime base image serves it per platform.
Extra recipe folders come from `TF2AIF_RECIPE_PATH` (os.pathsep-separated), passed in as `env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tf2aif.bases.folders import COMMON_FOLDER
from tf2aif.errors import RecipeError
from tf2aif.pipeline.yamlfile import load_file, load_schema, schema_issues
from tf2aif.resources import data_dir

__all__ = [
    "BACKEND_FLAGS",
    "ImageRef",
    "OptionImages",
    "Platform",
    "Recipe",
    "RecipeSet",
    "load_recipes",
    "platform_arches",
    "recipe_dirs",
]


@dataclass(frozen=True, kw_only=True)
class Platform:
    name: str
    arch: str
    variant: str | None = None
    accelerator: str | None = None
    description: str = ""

    @property
    def oci(self) -> str:
        """The OCI platform string buildx takes, e.g. linux/arm64."""
        return f"linux/{self.arch}" + (f"/{self.variant}" if self.variant else "")


@dataclass(frozen=True, kw_only=True)
class ImageRef:
    """A base image build: base_images/<base> layered on the vendor image."""

    base: str
    vendor: str


@dataclass(frozen=True, kw_only=True)
class OptionImages:
    """The base images a variant converts and serves on when a manifest sets this option true."""

    reason: str  # why: shown by plan and in the image labels (e.g. a bigger runtime)
    converter: ImageRef
    platforms: Mapping[str, ImageRef]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    runtime: str
    description: str
    precisions: tuple[str, ...]
    backend: str
    converter_input: str
    converter: ImageRef
    platforms: Mapping[str, ImageRef]
    options: Mapping[str, Any] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    option_images: Mapping[str, OptionImages] = field(default_factory=dict)


# Options a converter backend reads that no recipe gives a default for (see tf2aif.image.convert.backends).
BACKEND_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "onnx": ("opset",),
        "openvino": ("inference_precision_hint",),
        "tensorrt": ("opset", "tensorrt_version"),
        "tflite": ("int8_io",),
        "vitis-ai": ("arch_json", "card", "dpu_arch"),
    }
)
# Backend options that are true/false and off unless a manifest sets them (left out of the
# conversion spec when unset, so adding one changes no existing image).
BACKEND_FLAGS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"tflite": ("select_tf_ops", "unroll_recurrent")}
)


@dataclass(frozen=True, kw_only=True)
class RecipeSet:
    platforms: Mapping[str, Platform]
    recipes: tuple[Recipe, ...]
    base_images: frozenset[str]  # folders available in base_images/

    @property
    def runtimes(self) -> tuple[str, ...]:
        return tuple(sorted({r.runtime for r in self.recipes}))

    def serving(self, runtime: str, platform: str) -> Recipe | None:
        for recipe in self.recipes:
            if recipe.runtime == runtime and platform in recipe.platforms:
                return recipe
        return None

    def option_names(self, runtime: str) -> tuple[str, ...]:
        """The options a manifest may set for `runtime`: its recipes' defaults and what its backends read."""
        names = {
            name
            for r in self.recipes
            if r.runtime == runtime
            for name in (
                *r.options,
                *BACKEND_OPTIONS.get(r.backend, ()),
                *BACKEND_FLAGS.get(r.backend, ()),
            )
        }
        return tuple(sorted(names))

    def option_defaults(self, runtime: str) -> dict[str, Any]:
        """The defaults `runtime`'s recipes give their options (their type is the option's type)."""
        defaults: dict[str, Any] = {}
        for r in self.recipes:
            if r.runtime == runtime:
                defaults |= dict.fromkeys(BACKEND_FLAGS.get(r.backend, ()), False) | dict(r.options)
        return defaults

    def platforms_of(self, runtime: str) -> tuple[str, ...]:
        return tuple(sorted({p for r in self.recipes if r.runtime == runtime for p in r.platforms}))


def recipe_dirs(env: Mapping[str, str]) -> tuple[Path, ...]:
    """The shipped recipes, then each folder of `TF2AIF_RECIPE_PATH` split on os.pathsep (":"
    on POSIX, ";" on Windows, as PATH is); empty entries are skipped."""
    extra = [Path(p) for p in env.get("TF2AIF_RECIPE_PATH", "").split(os.pathsep) if p]
    return (data_dir("recipes"), *extra)


def load_recipes(
    dirs: Sequence[Path] | None = None, *, env: Mapping[str, str] | None = None
) -> RecipeSet:
    dirs = tuple(dirs) if dirs is not None else recipe_dirs(env or {})
    platforms: dict[str, Platform] = {}
    recipes: list[Recipe] = []
    for folder in dirs:
        platforms.update(_load_platforms(folder, known=platforms))
        recipes += [_load_recipe(f) for f in sorted(folder.glob("*/recipe.yaml"))]
    folders = {
        p.name
        for p in data_dir("base_images").iterdir()
        if (p / "Dockerfile").is_file() and p.name != COMMON_FOLDER
    }
    recipe_set = RecipeSet(
        platforms=MappingProxyType(platforms),
        recipes=tuple(recipes),
        base_images=frozenset(folders),
    )
    _check(recipe_set)
    return recipe_set


def platform_arches(env: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """Platform name -> CPU arch (amd64, arm64: the OCI and kubernetes.io/arch value), from the
    platforms of every recipe folder; `env` defaults to the process environment."""
    env = os.environ if env is None else env
    return _arches(env.get("TF2AIF_RECIPE_PATH", ""))


@lru_cache(maxsize=8)
def _arches(recipe_path: str) -> Mapping[str, str]:
    platforms = load_recipes(env={"TF2AIF_RECIPE_PATH": recipe_path}).platforms
    return MappingProxyType({name: p.arch for name, p in platforms.items()})


def _read(file: Path, schema: str) -> Any:
    loaded = load_file(file)
    issues = list(loaded.issues) or schema_issues(loaded, load_schema(schema))
    if issues:
        raise RecipeError("invalid recipe data:\n" + "\n".join(f"  {i}" for i in issues))
    return loaded.data


def _load_platforms(folder: Path, *, known: Mapping[str, Platform]) -> dict[str, Platform]:
    file = folder / "platforms.yaml"
    if not file.is_file():
        return {}
    out = {}
    for name, spec in _read(file, "platforms.schema.json")["platforms"].items():
        if name in known:
            raise RecipeError(
                f"{file}: platform {name!r} is already defined by an earlier recipe folder"
            )
        out[name] = Platform(name=name, **spec)
    return out


def _load_recipe(file: Path) -> Recipe:
    data = _read(file, "recipe.schema.json")
    converter = data["converter"]
    return Recipe(
        name=file.parent.name,
        runtime=data["runtime"],
        description=data.get("description", ""),
        precisions=tuple(data["precisions"]),
        backend=converter["backend"],
        converter_input=converter.get("input", "savedmodel"),
        converter=ImageRef(base=converter["base"], vendor=converter["vendor"]),
        platforms=MappingProxyType(
            {p: ImageRef(**ref) for p, ref in sorted(data["platforms"].items())}
        ),
        options=MappingProxyType(dict(data.get("options", {}))),
        reasons=MappingProxyType(dict(data.get("reasons", {}))),
        labels=MappingProxyType(dict(data.get("labels", {}))),
        option_images=MappingProxyType(
            {
                name: OptionImages(
                    reason=spec["reason"],
                    converter=ImageRef(**spec["converter"]),
                    platforms=MappingProxyType(
                        {p: ImageRef(**ref) for p, ref in sorted(spec["platforms"].items())}
                    ),
                    labels=MappingProxyType(dict(spec.get("labels", {}))),
                )
                for name, spec in sorted(data.get("option_images", {}).items())
            }
        ),
    )


def _check(recipe_set: RecipeSet) -> None:
    problems = []
    owners: dict[tuple[str, str], str] = {}
    for recipe in recipe_set.recipes:
        for platform, ref in recipe.platforms.items():
            if platform not in recipe_set.platforms:
                problems.append(
                    f"recipe {recipe.name!r}: unknown platform {platform!r}; known: {', '.join(recipe_set.platforms)}"
                )
            other = owners.setdefault((recipe.runtime, platform), recipe.name)
            if other != recipe.name:
                problems.append(
                    f"recipes {other!r} and {recipe.name!r} both serve {recipe.runtime} on {platform}"
                )
            problems += _missing_base(recipe, ref.base, recipe_set.base_images)
        problems += _missing_base(recipe, recipe.converter.base, recipe_set.base_images)
        for option, images in recipe.option_images.items():
            flags = {*BACKEND_FLAGS.get(recipe.backend, ()), *recipe.options}
            if option not in flags:
                problems.append(
                    f"recipe {recipe.name!r}: option_images.{option} is not an option of backend "
                    f"{recipe.backend!r} ({', '.join(sorted(flags)) or 'none'})"
                )
            missing = sorted(set(recipe.platforms) - set(images.platforms))
            if missing:
                problems.append(
                    f"recipe {recipe.name!r}: option_images.{option} has no image for "
                    f"{', '.join(missing)}"
                )
            for ref in (images.converter, *images.platforms.values()):
                problems += _missing_base(recipe, ref.base, recipe_set.base_images)
    if problems:
        raise RecipeError("invalid recipes:\n" + "\n".join(f"  {p}" for p in problems))


def _missing_base(recipe: Recipe, base: str, available: frozenset[str]) -> list[str]:
    if base in available:
        return []
    if base == COMMON_FOLDER:
        return [
            f"recipe {recipe.name!r}: base_images/{base} is shared by every base image, not a base"
        ]
    return [f"recipe {recipe.name!r}: base image folder base_images/{base} has no Dockerfile"]

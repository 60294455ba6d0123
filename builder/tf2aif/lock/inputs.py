"""What one manifest's build reads, as `tf2aif bake` would plan it: the input files of the lock
and the tool versions the base images pin (pure but for reading the files)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from tf2aif.lock.lockfile import LockInputs, ToolSet

__all__ = ["files_under", "normalise_name", "plan_inputs", "requirement_pins"]

_SKIP_PARTS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints"})


def files_under(root: Path) -> list[Path]:
    """Every regular file below `root` (or `root` itself), sorted, caches left out."""
    if root.is_file():
        return [root]
    found = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and not _SKIP_PARTS.intersection(p.relative_to(root).parts)
        and p.suffix != ".pyc"
    ]
    return sorted(found)


_PIN = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;#]+)\s*(?:;([^#]*))?"
)


def normalise_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file; comments, options and unpinned lines are
    ignored. A package pinned per environment marker keeps every pin with its marker:
    `2.4.6 (python_version >= "3.11"), 2.2.6 (python_version < "3.11")`."""
    pins: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            name, version, marker = match.groups()
            marker = (marker or "").strip()
            pins.setdefault(normalise_name(name), []).append(
                f"{version} ({marker})" if marker else version
            )
    return {name: ", ".join(versions) for name, versions in sorted(pins.items())}


# Never inputs, even when the model or plug-in context is the manifest's own folder.
_NOT_INPUTS = re.compile(r"(^|/)(\.tf2aif/|\.git/)|^tf2aif\.lock$|^tf2aif-record[^/]*\.json$")


def _stored_name(path: Path, root: Path, data: tuple[str, Path] | None = None) -> str:
    """Relative to the manifest's folder; shipped data outside it as `tf2aif:<folder>/...`."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        if data is None:
            return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()
        name, base = data
        return f"tf2aif:{name}/{path.resolve().relative_to(base.resolve()).as_posix()}"


def _add_tree(
    files: dict[str, Path], path: Path, root: Path, data: tuple[str, Path] | None = None
) -> None:
    for item in files_under(path) if path.exists() else ():
        name = _stored_name(item, root, data)
        if not _NOT_INPUTS.search(name):
            files[name] = item


def plan_inputs(
    manifest: Path, *, env: Mapping[str, str], vendor_map: Mapping[str, str] | None = None
) -> LockInputs:
    """Inputs of the build `tf2aif bake` would run for `manifest`: the manifest, the model and
    plug-in build contexts, the recipes and base image folders the plan uses (and
    base_images/common, which every base build copies install.sh from), the vendor images
    those name (as the recipes name them: the vendor map is applied when resolving) and the
    base images' requirement pins."""
    from tf2aif.bases.folders import COMMON_FOLDER
    from tf2aif.pipeline.manifest import load_manifest
    from tf2aif.pipeline.plan import EMPTY_CONTEXT, make_plan
    from tf2aif.pipeline.recipes import load_recipes, recipe_dirs
    from tf2aif.pipeline.resolve import resolve
    from tf2aif.resources import data_dir

    parsed, _ = load_manifest(manifest)
    plan = make_plan(resolve(parsed, load_recipes(env=env)), env=env)
    root = parsed.root
    files = {_stored_name(parsed.file, root): parsed.file}
    contexts = dict(plan.converts[0].contexts) if plan.converts else {}
    contexts.setdefault("model", parsed.model.path)
    for context in contexts.values():
        if context != EMPTY_CONTEXT:
            _add_tree(files, root / context, root)
    shipped_recipes = data_dir("recipes").resolve()
    for folder in recipe_dirs(env):
        data = ("recipes", folder) if folder.resolve() == shipped_recipes else None
        _add_tree(files, folder / "platforms.yaml", root, data)
        for recipe in sorted({v.recipe for v in plan.variants}):
            _add_tree(files, folder / recipe, root, data)
    base_dir = data_dir("base_images")
    tools = {}
    if plan.bases:
        _add_tree(files, base_dir / COMMON_FOLDER, root, ("base_images", base_dir))
    for folder in sorted({b.folder for b in plan.bases}):
        _add_tree(files, base_dir / folder, root, ("base_images", base_dir))
        for requirements in sorted((base_dir / folder).glob("requirements*.txt")):
            name = (
                folder
                if requirements.name == "requirements.txt"
                else f"{folder}/{requirements.name}"
            )
            tools[name] = ToolSet(
                source=_stored_name(requirements, root, ("base_images", base_dir)),
                packages=requirement_pins(requirements),
            )
    return LockInputs(
        manifest=_stored_name(parsed.file, root),
        files=dict(sorted(files.items())),
        images=tuple(sorted({b.vendor for b in plan.bases})),
        vendor_map=dict(vendor_map or {}),
        tools=tools,
    )

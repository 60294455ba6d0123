"""Stage 4, emit: Plan -> docker-bake.json (pure), plus the one function that writes the build dir.

The bake file uses bake's own vocabulary and only the keys buildx defines (group, target,
context, contexts, dockerfile, args, labels, tags, platforms, output, cache-from, cache-to).
Output is deterministic: sorted keys, stable order, paths relative to the manifest's folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf2aif.bases.folders import COMMON_CONTEXT, COMMON_FOLDER
from tf2aif.pipeline.plan import (
    BUILD_DIR,
    CONTEXT_DIR,
    EMPTY_CONTEXT,
    BaseTarget,
    ConvertTarget,
    Plan,
    ServeTarget,
)
from tf2aif.resources import data_dir

__all__ = [
    "BAKE_FILE",
    "EmitOptions",
    "bake_dict",
    "bake_json",
    "stage_context",
    "staged_files",
    "write_build_dir",
]

BAKE_FILE = f"{BUILD_DIR}/docker-bake.json"
BASES_DIR = f"{BUILD_DIR}/base_images"
ARTIFACTS_DIR = f"{BUILD_DIR}/artifacts"
_PACKAGE = Path(__file__).resolve().parents[1]  # the tf2aif package root


def stage_context(stage: str) -> str:
    """The build context of a tf2aif stage (convert, serve, client): its Dockerfile and the part
    of tf2aif it copies, nothing else, so a stage's content digest covers only what it reads."""
    return f"{CONTEXT_DIR}/{stage}"


@dataclass(frozen=True, kw_only=True)
class EmitOptions:
    """cache: None, or "registry" to emit registry cache-from/cache-to per target."""

    cache: str | None = None
    cache_repository: str | None = None  # default: <registry>/<name>-cache


def bake_dict(plan: Plan, options: EmitOptions = EmitOptions()) -> dict[str, Any]:
    targets: dict[str, dict[str, Any]] = {}
    for base in plan.bases:
        targets[base.name] = _base(base)
    for convert in plan.converts:
        targets[convert.name] = _convert(convert)
    for serve in plan.serves:
        targets[serve.name] = _serve(serve)
    if plan.client:
        targets[plan.client.name] = {
            "context": stage_context("client"),
            "dockerfile": "client.Dockerfile",
            "contexts": {"base": f"target:{plan.client.base}"},
            "labels": dict(plan.client.labels),
            "platforms": list(plan.client.platforms),
            "tags": list(plan.client.tags),
        }
    if options.cache:
        for name, target in targets.items():
            target.update(_cache(plan, name, options))
    groups = {name: {"targets": list(members)} for name, members in plan.groups.items()}
    return {"group": groups, "target": targets}


def bake_json(plan: Plan, options: EmitOptions = EmitOptions()) -> str:
    return json.dumps(bake_dict(plan, options), indent=2, sort_keys=True) + "\n"


def _base(base: BaseTarget) -> dict[str, Any]:
    target: dict[str, Any] = {
        "context": f"{BASES_DIR}/{base.folder}",
        "contexts": {COMMON_CONTEXT: f"{BASES_DIR}/{COMMON_FOLDER}"},
        "dockerfile": "Dockerfile",
        "args": {"VENDOR_IMAGE": base.vendor},
        # Used only as a build context: keep it in the build cache, do not export a multi-GB image.
        "output": ["type=cacheonly"],
    }
    if base.platforms:
        target["platforms"] = list(base.platforms)
    return target


def _convert(convert: ConvertTarget) -> dict[str, Any]:
    return {
        "context": stage_context("convert"),
        "dockerfile": "convert.Dockerfile",
        "contexts": {"base": f"target:{convert.base}", **convert.contexts},
        "args": {"CONVERT_SPEC": convert.spec.to_json()},
        "output": [f"type=local,dest={ARTIFACTS_DIR}/{convert.name}"],
    }


# Labels also written as OCI annotations on the image index, where registries and
# `imagetools inspect` show them without pulling a platform's config. Values have no commas.
INDEX_ANNOTATIONS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.version",
    "org.opencontainers.image.source",
    "org.opencontainers.image.revision",
    "io.tf2aif.model.digest",
    "io.tf2aif.content-digest",
    "io.tf2aif.runtime",
    "io.tf2aif.precision",
)


def _annotations(labels: Mapping[str, str]) -> list[str]:
    return [
        f"index:{key}={labels[key]}"
        for key in INDEX_ANNOTATIONS
        if key in labels and "," not in labels[key]
    ]


def _serve(serve: ServeTarget) -> dict[str, Any]:
    return {
        "annotations": _annotations(serve.labels),
        "context": stage_context("serve"),
        "dockerfile": "serve.Dockerfile",
        "contexts": {"artifact": f"target:{serve.convert}", "base": f"target:{serve.base}"},
        "args": dict(serve.args),
        "labels": dict(serve.labels),
        "platforms": list(serve.platforms),
        "tags": list(serve.tags),
    }


def _cache(plan: Plan, name: str, options: EmitOptions) -> dict[str, list[str]]:
    repository = options.cache_repository or (
        f"{plan.registry}/{plan.name}-cache" if plan.registry else f"{plan.name}-cache"
    )
    ref = f"{repository}:{name}"
    return {
        "cache-from": [f"type=registry,ref={ref}"],
        "cache-to": [f"type=registry,ref={ref},mode=max"],
    }


def write_build_dir(plan: Plan, text: str) -> Path:
    """Write the bake file and everything it references under <manifest folder>/.tf2aif/:
    exactly `staged_files(plan)`, the files the content digests were computed from."""
    root = Path(plan.root)
    build = root / BUILD_DIR
    for folder in (CONTEXT_DIR, BASES_DIR):
        if (root / folder).exists():
            shutil.rmtree(root / folder)
    for name, source in staged_files(plan).items():
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest, follow_symlinks=False)
    (root / EMPTY_CONTEXT).mkdir(parents=True, exist_ok=True)
    for folder in (CONTEXT_DIR, BASES_DIR, EMPTY_CONTEXT):
        _fix_times(root / folder)
    bake_file = root / BAKE_FILE
    bake_file.write_text(text)
    (build / ".gitignore").write_text("*\n")
    return bake_file


# COPY keeps file times, and the docker driver cannot clamp them to SOURCE_DATE_EPOCH: without
# this, a checkout's or a build folder's own times would make the same inputs give other layers on
# another runner. 1980-01-01, the earliest time a zip (wheel) can hold.
STAGED_MTIME = 315532800


def _fix_times(folder: Path) -> None:
    if not folder.exists():
        return
    for parent, _, names in os.walk(folder):
        for name in names:
            os.utime(Path(parent) / name, (STAGED_MTIME, STAGED_MTIME), follow_symlinks=False)
        os.utime(parent, (STAGED_MTIME, STAGED_MTIME))


# What each stage copies of tf2aif: only the modules it runs, so that editing, say, the server
# does not invalidate every conversion. None means the whole package (the bench client's CLI).
_IMAGE_COMMON = (
    "__init__.py",
    "py.typed",
    "errors.py",
    "image/__init__.py",
    "image/artifact.py",
    "image/flex.py",
    "image/openvino_ext.py",
    "image/plugins.py",
)
STAGE_LIBS: Mapping[str, tuple[str, ...] | None] = {
    "lib-convert": (*_IMAGE_COMMON, "image/convert"),
    "lib-serve": (*_IMAGE_COMMON, "image/server"),
    "lib-full": None,
}
# stage -> (its Dockerfile, the part of tf2aif it copies)
STAGES: Mapping[str, tuple[str, str]] = {
    "convert": ("convert.Dockerfile", "lib-convert"),
    "serve": ("serve.Dockerfile", "lib-serve"),
    "client": ("client.Dockerfile", "lib-full"),
}


def staged_files(plan: Plan) -> dict[str, Path]:
    """Every file the build folder holds for `plan` (bake file aside): root-relative path ->
    the file it is copied from. One list for the writer and for the content digests."""
    files: dict[str, Path] = {}
    for stage, (dockerfile, lib) in STAGES.items():
        if stage == "client" and not plan.client:
            continue
        context = stage_context(stage)
        files[f"{context}/{dockerfile}"] = _PACKAGE / "pipeline" / "dockerfiles" / dockerfile
        for name, source in _package_files(STAGE_LIBS[lib]):
            files[f"{context}/{lib}/tf2aif/{name}"] = source
    folders = {b.folder for b in plan.bases}
    base_images = data_dir("base_images")
    for folder in sorted(folders | ({COMMON_FOLDER} if folders else set())):
        for name, source in _tree_files(base_images / folder):
            files[f"{BASES_DIR}/{folder}/{name}"] = source
    return dict(sorted(files.items()))


def _package_files(members: tuple[str, ...] | None) -> list[tuple[str, Path]]:
    if members is None:  # the whole package, minus the wheel's copy of recipes and base images
        return [(n, p) for n, p in _tree_files(_PACKAGE) if not n.startswith("_data/")]
    out = []
    for member in members:
        source = _PACKAGE / member
        if source.is_dir():
            out += [(f"{member}/{name}", path) for name, path in _tree_files(source)]
        elif source.is_file():
            out.append((member, source))
    return out


def _tree_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative name, path) of every file below `folder`, minus Python's byte-code caches."""
    out = []
    for parent, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        here = Path(parent)
        prefix = here.relative_to(folder).as_posix()
        links = [d for d in dirs if (here / d).is_symlink()]  # copied as links, not walked
        for name in (*names, *links):
            if not name.endswith(".pyc"):
                out.append((name if prefix == "." else f"{prefix}/{name}", here / name))
    return sorted(out)


def read_bake(path: Path) -> Mapping[str, Any]:
    return json.loads(path.read_text())

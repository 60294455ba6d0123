"""Stage 4, emit: Plan -> docker-bake.json (pure), plus the one function that writes the build dir.

The bake file uses bake's own vocabulary and only the keys buildx defines (group, target,
context, contexts, dockerfile, args, labels, tags, platforms, output, cache-from, cache-to).
Output is deterministic: sorted keys, stable order, paths relative to the manifest's folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf2aif.bases import COMMON_CONTEXT, COMMON_FOLDER
from tf2aif.plan import (
    BUILD_DIR,
    CONTEXT_DIR,
    EMPTY_CONTEXT,
    BaseTarget,
    ConvertTarget,
    Plan,
    ServeTarget,
)
from tf2aif.resources import data_dir

__all__ = ["BAKE_FILE", "EmitOptions", "bake_dict", "bake_json", "write_build_dir"]

BAKE_FILE = f"{BUILD_DIR}/docker-bake.json"
BASES_DIR = f"{BUILD_DIR}/base_images"
ARTIFACTS_DIR = f"{BUILD_DIR}/artifacts"
_PACKAGE = Path(__file__).resolve().parent


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
            "context": CONTEXT_DIR,
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
        "context": CONTEXT_DIR,
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
        "context": CONTEXT_DIR,
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
    """Write the bake file and everything it references under <manifest folder>/.tf2aif/."""
    root = Path(plan.root)
    build = root / BUILD_DIR
    context = root / CONTEXT_DIR
    for lib, members in STAGE_LIBS.items():
        _copy_package(context / lib / "tf2aif", members)
    for name in ("convert.Dockerfile", "serve.Dockerfile", "client.Dockerfile"):
        shutil.copyfile(_PACKAGE / "dockerfiles" / name, context / name)
    (root / EMPTY_CONTEXT).mkdir(parents=True, exist_ok=True)
    folders = {b.folder for b in plan.bases}
    for base in sorted(folders | ({COMMON_FOLDER} if folders else set())):
        _replace_tree(data_dir("base_images") / base, root / BASES_DIR / base)
    bake_file = root / BAKE_FILE
    bake_file.write_text(text)
    (build / ".gitignore").write_text("*\n")
    return bake_file


# What each stage copies of tf2aif: only the modules it runs, so that editing, say, the server
# does not invalidate every conversion. None means the whole package (the bench client's CLI).
STAGE_LIBS: Mapping[str, tuple[str, ...] | None] = {
    "lib-convert": ("__init__.py", "py.typed", "artifact.py", "errors.py", "plugins.py", "convert"),
    "lib-serve": ("__init__.py", "py.typed", "artifact.py", "errors.py", "plugins.py", "server"),
    "lib-full": None,
}
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "_data")


def _copy_package(dest: Path, members: tuple[str, ...] | None) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    if members is None:
        shutil.copytree(_PACKAGE, dest, ignore=_IGNORE)
        return
    dest.mkdir(parents=True)
    for name in members:
        source = _PACKAGE / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=_IGNORE)
        elif source.is_file():
            shutil.copyfile(source, dest / name)


def _replace_tree(source: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest)


def read_bake(path: Path) -> Mapping[str, Any]:
    return json.loads(path.read_text())

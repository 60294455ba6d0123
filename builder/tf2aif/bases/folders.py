"""The base image folders (`base_images/`) and the names other stages share about them.

Every `base_images/<folder>/Dockerfile` starts `ARG VENDOR_IMAGE=<vendor ref>`, so a bake can
swap the vendor image for another one, and copies `install.sh` from the named build context
`tf2aif-base-common` (`base_images/common`, shared by every base and not a base itself).
Pure: constants, folder listing and digests; nothing here starts a process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tf2aif.errors import RecipeError
from tf2aif.pipeline.digests import trees_digest

__all__ = [
    "COMMON_CONTEXT",
    "COMMON_FOLDER",
    "DEFAULT_SBOM_GENERATOR",
    "BaseFolder",
    "base_digest",
    "base_folders",
    "common_context_arg",
]

# base_images/common: what every base build copies (install.sh), given to each base build as the
# named build context COMMON_CONTEXT. Not a base: it has no Dockerfile and is never listed as one.
COMMON_FOLDER = "common"
COMMON_CONTEXT = "tf2aif-base-common"
# The generator BuildKit runs for `--sbom=true`; base_images/sbom-scanner stands in for it.
DEFAULT_SBOM_GENERATOR = "docker/buildkit-syft-scanner:stable-1"
_VENDOR_ARG = re.compile(r"^ARG\s+VENDOR_IMAGE=(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class BaseFolder:
    """One `base_images/<name>` folder and the vendor image its Dockerfile defaults to."""

    name: str
    path: Path
    vendor_default: str


def base_folders(root: Path) -> tuple[BaseFolder, ...]:
    """Every folder under `root` holding a Dockerfile, sorted by name (never `common`)."""
    folders = []
    for dockerfile in sorted(root.glob("*/Dockerfile")):
        if dockerfile.parent.name == COMMON_FOLDER:
            continue
        match = _VENDOR_ARG.search(dockerfile.read_text())
        if match is None:
            raise RecipeError(f"{dockerfile}: no 'ARG VENDOR_IMAGE=<default>' line")
        folders.append(
            BaseFolder(name=dockerfile.parent.name, path=dockerfile.parent, vendor_default=match[1])
        )
    return tuple(folders)


def base_digest(folder: Path) -> str:
    """Content digest of one base build: its own folder plus the common folder next to it, so a
    change to the shared install.sh changes every base's digest (and the tags built on it)."""
    return trees_digest({folder.name: folder, COMMON_FOLDER: folder.parent / COMMON_FOLDER})


def common_context_arg(folder: Path) -> list[str]:
    """`docker buildx build` arguments naming the common context for the base in `folder`."""
    return ["--build-context", f"{COMMON_CONTEXT}={folder.parent / COMMON_FOLDER}"]

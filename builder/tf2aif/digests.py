"""Content digests that are stable across machines and checkouts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["json_digest", "tree_digest", "trees_digest"]

_SKIP = {"__pycache__", ".DS_Store"}


def tree_digest(path: Path) -> str:
    """sha256 over relative file names and contents in sorted order (a file or a folder)."""
    digest = hashlib.sha256()
    _update(digest, path, "")
    return f"sha256:{digest.hexdigest()}"


def trees_digest(trees: Mapping[str, Path]) -> str:
    """sha256 over several folders at once, each file named `<key>/<relative name>`: a build
    that reads more than one folder (a base folder plus base_images/common) changes when any
    of them does."""
    digest = hashlib.sha256()
    for key in sorted(trees):
        _update(digest, trees[key], f"{key}/")
    return f"sha256:{digest.hexdigest()}"


def _update(digest: Any, path: Path, prefix: str) -> None:
    base = path if path.is_dir() else path.parent
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.rglob("*") if p.is_file() and not _SKIP & set(p.parts))
    )
    for item in files:
        digest.update((prefix + item.relative_to(base).as_posix()).encode() + b"\0")
        with item.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)


def json_digest(value: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

"""Content digests that are stable across machines and checkouts.

An image's content digest is derived from the emitted bake graph, not from a list of inputs kept
by hand: `image_digests(bake, names, root=...)` walks each target's links (`target:<name>` in
`contexts`) and hashes everything those targets can read:

- every field of the target that is an input (args, platforms, labels, the Dockerfile stage, ...),
  minus outputs (tags, output, cache-from/-to) and the labels that carry the digest itself or
  name the commit that built the image (source, revision);
- the Dockerfile's bytes and the bytes, names and executable bits of every file in the main
  context and in every local named context, minus what a `.dockerignore` hides from the build;
- a named context that is another target, by that target's own digest (a Merkle walk: target
  names do not matter, only what they build from);
- any other named context (`docker-image://...`, a URL) by its reference string, so a vendor
  image pinned by digest in a vendor map or lock is covered by that digest.

Nothing else enters: no absolute path, no file time, no owner, so the same inputs give the same
digest on any checkout and any machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tf2aif.errors import DigestError

__all__ = [
    "CONTENT_DIGEST_LABEL",
    "NOT_INPUT_LABELS",
    "context_files",
    "image_digest",
    "image_digests",
    "json_digest",
    "tree_digest",
    "trees_digest",
]

_SKIP = {"__pycache__", ".DS_Store"}

CONTENT_DIGEST_LABEL = "io.tf2aif.content-digest"
# Labels whose value is the digest (or part of it), or the commit that happened to build the
# image: leaving the commit out keeps one tag per content, whichever commit first built it.
NOT_INPUT_LABELS = frozenset(
    {
        CONTENT_DIGEST_LABEL,
        "org.opencontainers.image.version",
        "org.opencontainers.image.source",
        "org.opencontainers.image.revision",
    }
)
# Bake target fields that say where results go, not what is built.
_OUTPUT_FIELDS = frozenset({"tags", "output", "cache-from", "cache-to", "description"})
# Never part of what a build reads as tf2aif emits it: Python's byte-code caches (regenerated
# from the sources, which are covered) and the build folder of tf2aif's own outputs.
_NEVER_READ = frozenset({"__pycache__", ".tf2aif"})
_LINK = "target:"


# -- image digests from the bake graph ---------------------------------------------------------


def image_digest(
    bake: Mapping[str, Any],
    target: str,
    *,
    root: Path,
    staged: Mapping[str, Path] | None = None,
) -> str:
    """The content digest of one bake target (see the module docstring)."""
    return image_digests(bake, (target,), root=root, staged=staged)[target]


def image_digests(
    bake: Mapping[str, Any],
    targets: Iterable[str],
    *,
    root: Path,
    staged: Mapping[str, Path] | None = None,
) -> dict[str, str]:
    """Content digests of several targets of one bake graph, sharing the work of common links.

    `root` is the folder bake runs in (relative context paths start there). `staged` maps
    root-relative file paths to the files they will be copied from, for a build folder that is
    not written yet: every context under a staged folder is read from that mapping instead."""
    walk = _Walk(bake.get("target", {}), root=root, staged=staged)
    return {name: walk.digest(name) for name in targets}


class _Walk:
    def __init__(
        self,
        targets: Mapping[str, Any],
        *,
        root: Path,
        staged: Mapping[str, Path] | None,
    ) -> None:
        self.targets = targets
        self.files = _Files(root, staged)
        self.done: dict[str, str] = {}
        self.trees: dict[tuple[str, str | None], str] = {}

    def digest(self, name: str, path: tuple[str, ...] = ()) -> str:
        if name in self.done:
            return self.done[name]
        if name in path:
            loop = " -> ".join((*path[path.index(name) :], name))
            raise DigestError(f"bake targets link in a loop: {loop}")
        if name not in self.targets:
            where = f" (linked from {path[-1]})" if path else ""
            raise DigestError(f"bake target {name!r} is not in the bake file{where}")
        self.done[name] = json_digest(self._inputs(name, self.targets[name], (*path, name)))
        return self.done[name]

    def _inputs(self, name: str, target: Mapping[str, Any], path: tuple[str, ...]) -> dict:
        inputs: dict[str, Any] = {}
        for key, value in target.items():
            if key in _OUTPUT_FIELDS:
                continue
            if key == "labels":
                value = {k: v for k, v in value.items() if k not in NOT_INPUT_LABELS}
            elif key == "annotations":
                value = [a for a in value if _annotation_key(a) not in NOT_INPUT_LABELS]
            elif key == "contexts":
                value = {k: self._context(v, path) for k, v in sorted(value.items())}
            elif key in ("context", "dockerfile"):
                continue  # hashed below, as what they read
            if value or value in (0, False):  # an empty list or mapping is the same as none
                inputs[key] = value
        context = target.get("context", ".")
        dockerfile = target.get("dockerfile", "Dockerfile")
        inputs["context"] = self._context(context, path, dockerfile=dockerfile)
        if _is_local(context) and "dockerfile-inline" not in target:
            file = posixpath.normpath(posixpath.join(context, dockerfile))
            inputs["dockerfile"] = self.files.digest(file, f"{name}: dockerfile")
        return inputs

    def _context(self, value: str, path: tuple[str, ...], *, dockerfile: str | None = None):
        if value.startswith(_LINK):
            return {"target": self.digest(value[len(_LINK) :], path)}
        if not _is_local(value):
            return {"ref": value}
        directory = posixpath.normpath(value)
        key = (directory, dockerfile)
        if key not in self.trees:
            self.trees[key] = self.files.tree(directory, dockerfile=dockerfile, who=path[-1])
        return {"files": self.trees[key]}


def _annotation_key(annotation: str) -> str:
    """`index:org.opencontainers.image.version=...` -> `org.opencontainers.image.version`."""
    key = annotation.split("=", 1)[0]
    return key.split(":", 1)[1] if ":" in key else key


def _is_local(value: str) -> bool:
    """A local folder, as buildx tells them apart from remote contexts."""
    return not (
        value.startswith(_LINK) or "://" in value or value.startswith(("git@", "github.com/"))
    )


# -- files a context holds ---------------------------------------------------------------------


class _Files:
    """Reads root-relative paths from disk, or from `staged` for folders not written yet."""

    def __init__(self, root: Path, staged: Mapping[str, Path] | None) -> None:
        self.root = root
        self.staged = dict(staged or {})
        # the top folders that staging owns: nothing on disk below them is read
        self.staged_tops = {p.split("/", 1)[0] for p in self.staged}
        self.digests: dict[Path, str] = {}  # one source can be staged in several contexts

    def _is_staged(self, relative: str) -> bool:
        return bool(self.staged) and relative.split("/", 1)[0] in self.staged_tops

    def source(self, relative: str) -> Path | None:
        if self._is_staged(relative):
            return self.staged.get(relative)
        path = self.root / relative
        return path if path.is_file() or path.is_symlink() else None

    def digest(self, relative: str, who: str) -> str:
        source = self.source(relative)
        if source is None:
            raise DigestError(f"{who}: {relative} does not exist")
        return self.file_digest(source)

    def file_digest(self, path: Path) -> str:
        if path not in self.digests:
            self.digests[path] = _file_digest(path)
        return self.digests[path]

    def listing(self, directory: str) -> dict[str, Path]:
        """context-relative name -> source file, for every file below `directory`."""
        if self._is_staged(directory):
            prefix = "" if directory == "." else directory + "/"
            return {p[len(prefix) :]: s for p, s in self.staged.items() if p.startswith(prefix)}
        base = self.root / directory
        if not base.is_dir():
            return {}
        out = {}
        for folder, dirs, names in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d not in _NEVER_READ)
            for entry in (*names, *(d for d in dirs if (Path(folder) / d).is_symlink())):
                item = Path(folder) / entry
                out[item.relative_to(base).as_posix()] = item
        return out

    def tree(self, directory: str, *, dockerfile: str | None, who: str) -> str:
        exists = self._is_staged(directory) or (self.root / directory).is_dir()
        if not exists:
            raise DigestError(f"{who}: build context {directory} does not exist")
        files = self.listing(directory)
        ignore_file = _ignore_file(files, dockerfile)
        patterns = _ignore_patterns(files[ignore_file]) if ignore_file else []
        names = context_files(files, patterns)
        digest = hashlib.sha256()
        if ignore_file:  # read by the build even where it hides itself
            ignore = self.file_digest(files[ignore_file])
            digest.update(f"ignore\0{ignore_file}\0{ignore}\0".encode())
        for name in names:
            digest.update(name.encode() + b"\0" + self.file_digest(files[name]).encode() + b"\0")
        return f"sha256:{digest.hexdigest()}"


def _ignore_file(files: Mapping[str, Path], dockerfile: str | None) -> str | None:
    """The ignore file BuildKit uses: `<Dockerfile>.dockerignore` next to the Dockerfile of the
    main context first, else `.dockerignore` at the context's root (named contexts: only that)."""
    candidates = [f"{posixpath.normpath(dockerfile)}.dockerignore"] if dockerfile else []
    return next((c for c in (*candidates, ".dockerignore") if c in files), None)


def _ignore_patterns(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def context_files(files: Iterable[str], patterns: list[str]) -> list[str]:
    """The names of `files` (context-relative) a build can read under `.dockerignore` patterns,
    sorted; Docker's own matcher decides (the docker SDK's port of moby's patternmatcher)."""
    names = sorted(files)
    if not patterns:
        return names
    from docker.utils.build import PatternMatcher

    matcher = PatternMatcher(patterns)
    return [n for n in names if not matcher.matches(n)]


def _file_digest(path: Path) -> str:
    """Kind, executable bit and bytes of one file (what COPY carries into a layer, minus
    owners and times, which the build sets)."""
    info = path.lstat()
    digest = hashlib.sha256()
    if stat.S_ISLNK(info.st_mode):
        digest.update(b"link\0" + os.readlink(path).encode())
    else:
        digest.update(b"exec\0" if info.st_mode & stat.S_IXUSR else b"file\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


# -- plain digests -----------------------------------------------------------------------------


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
    ignore = base / ".dockerignore"
    if path.is_dir() and ignore.is_file():  # what a build given this folder cannot read
        names = {p.relative_to(base).as_posix(): p for p in files}
        files = [names[n] for n in context_files(names, _ignore_patterns(ignore))]
    for item in files:
        digest.update((prefix + item.relative_to(base).as_posix()).encode() + b"\0")
        with item.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)


def json_digest(value: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

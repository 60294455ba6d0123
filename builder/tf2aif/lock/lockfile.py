"""The reproducibility lock (`tf2aif.lock`, next to the manifest): its data, diff and file.

It pins what a build depends on but the manifest does not fix:
- every base image reference (vendor images, after the vendor map) resolved to a digest,
- the tool versions the base images install (requirements.txt pins, or `pip list` of a built base),
- a content digest of every input file (manifest, model, plug-ins, recipes, base image folders),
so `tf2aif lock --check` can say exactly what changed since the lock was written, and the
locked digests can be fed back to the build as a vendor map (ref -> ref@sha256:...).

Three modules along the flow: `lock.inputs` finds what a manifest's build reads (pure, from the
plan), `lock.resolvers` asks a registry or an image (the edge), this module builds, compares,
writes and reads the lock (pure but for the file I/O at the end). A resolver is passed in.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tf2aif.errors import LockError
from tf2aif.pipeline.yamlfile import file_problem, load_checked

__all__ = [
    "LOCK_FILE",
    "Lock",
    "LockInputs",
    "LockedImage",
    "ResolvedImage",
    "Resolver",
    "ToolSet",
    "build_lock",
    "check_lock",
    "diff_locks",
    "digest_files",
    "digest_of",
    "dump_lock",
    "load_lock",
    "strip_digest",
    "write_lock",
    "write_vendor_map",
]

log = logging.getLogger(__name__)

LOCK_FILE = "tf2aif.lock"
LOCK_FORMAT = 1
_CHUNK = 1 << 20
_HEADER = "# Written by `tf2aif lock`; checked by `tf2aif lock --check`. Do not edit by hand.\n"


@dataclass(frozen=True, kw_only=True)
class ResolvedImage:
    digest: str  # sha256 of the manifest or index the reference points at
    platforms: tuple[str, ...] = ()  # "linux/amd64", ... (empty for a single-platform manifest)


Resolver = Callable[[str], ResolvedImage]


@dataclass(frozen=True, kw_only=True)
class ToolSet:
    source: str  # "base_images/convert-tf/requirements.txt" or "pip list in <image>"
    packages: Mapping[str, str]  # normalised name -> version


@dataclass(frozen=True, kw_only=True)
class LockInputs:
    """What one build depends on. `files` keys are the names stored in the lock."""

    manifest: str  # manifest path relative to the lock
    files: Mapping[str, Path]
    images: tuple[str, ...]  # image references as the recipes / base images name them
    vendor_map: Mapping[str, str] = field(default_factory=dict)  # ref -> replacement ref
    tools: Mapping[str, ToolSet] = field(default_factory=dict)  # base folder -> versions


@dataclass(frozen=True, kw_only=True)
class LockedImage:
    source: str  # what is actually pulled: the vendor map's replacement, else the ref itself
    digest: str
    platforms: tuple[str, ...] = ()

    @property
    def pinned(self) -> str:
        return f"{strip_digest(self.source)}@{self.digest}"


@dataclass(frozen=True, kw_only=True)
class Lock:
    manifest: str
    files: Mapping[str, str]  # stored name -> sha256:...
    images: Mapping[str, LockedImage]  # ref -> what it resolved to
    tools: Mapping[str, ToolSet]
    format: int = LOCK_FORMAT

    def vendor_map(self) -> dict[str, str]:
        """ref -> ref@sha256:... : the form `tf2aif bake --vendor-map` takes."""
        return {ref: image.pinned for ref, image in sorted(self.images.items())}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "manifest": self.manifest,
            "files": dict(sorted(self.files.items())),
            "images": {
                ref: {"source": i.source, "digest": i.digest, "platforms": list(i.platforms)}
                for ref, i in sorted(self.images.items())
            },
            "tools": {
                name: {"source": t.source, "packages": dict(sorted(t.packages.items()))}
                for name, t in sorted(self.tools.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lock:
        return cls(
            format=int(data.get("format", LOCK_FORMAT)),
            manifest=str(data["manifest"]),
            files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
            images={
                str(ref): LockedImage(
                    source=str(i["source"]),
                    digest=str(i["digest"]),
                    platforms=tuple(i.get("platforms") or ()),
                )
                for ref, i in (data.get("images") or {}).items()
            },
            tools={
                str(name): ToolSet(source=str(t["source"]), packages=dict(t["packages"]))
                for name, t in (data.get("tools") or {}).items()
            },
        )


# --- digests --------------------------------------------------------------------------------------


def _digest_file(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


def digest_files(files: Mapping[str, Path]) -> dict[str, str]:
    return {name: _digest_file(path) for name, path in sorted(files.items())}


def strip_digest(ref: str) -> str:
    return ref.split("@", 1)[0]


def digest_of(ref: str) -> str | None:
    return ref.split("@", 1)[1] if "@" in ref else None


# --- building and checking the lock ------------------------------------------------------------


def _resolve_all(
    refs: Iterable[str], vendor_map: Mapping[str, str], resolve: Resolver
) -> dict[str, LockedImage]:
    images, failures = {}, []
    for ref in sorted(set(refs)):
        source = vendor_map.get(ref, ref)
        try:
            resolved = (
                ResolvedImage(digest=digest_of(source))  # already pinned: nothing to ask
                if digest_of(source)
                else resolve(source)
            )
        except LockError as exc:
            failures.append(f"  {source}: {exc}")
            continue
        images[ref] = LockedImage(
            source=source, digest=resolved.digest, platforms=resolved.platforms
        )
        log.debug("%s -> %s", source, resolved.digest)
    if failures:
        raise LockError(
            f"cannot resolve {len(failures)} image reference(s) to a digest:\n"
            + "\n".join(failures)
            + "\npoint unreachable vendor images at a mirror with --vendor-map FILE"
        )
    return images


def build_lock(inputs: LockInputs, resolve: Resolver) -> Lock:
    return Lock(
        manifest=inputs.manifest,
        files=digest_files(inputs.files),
        images=_resolve_all(inputs.images, inputs.vendor_map, resolve),
        tools=dict(inputs.tools),
    )


def diff_locks(old: Lock, new: Lock) -> tuple[str, ...]:
    """One line per difference, naming what changed; empty when the locks agree."""
    lines = [*_diff_files(old.files, new.files), *_diff_images(old.images, new.images)]
    for name in sorted(set(old.tools) | set(new.tools)):
        before = old.tools.get(name, ToolSet(source="", packages={})).packages
        after = new.tools.get(name, ToolSet(source="", packages={})).packages
        for package in sorted(set(before) | set(after)):
            if before.get(package) != after.get(package):
                was, now = before.get(package, "absent"), after.get(package, "absent")
                lines.append(f"tool     {name}: {package} {was} -> {now}")
    return tuple(lines)


def _diff_files(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    lines = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            lines.append(f"removed  {name}")
        elif name not in old:
            lines.append(f"added    {name}")
        elif old[name] != new[name]:
            lines.append(f"changed  {name}")
    return lines


def _diff_images(old: Mapping[str, LockedImage], new: Mapping[str, LockedImage]) -> list[str]:
    lines = []
    for ref in sorted(set(old) | set(new)):
        if ref not in new:
            lines.append(f"image    {ref} is no longer used")
        elif ref not in old:
            lines.append(f"image    {ref} is not locked")
        elif old[ref].source != new[ref].source:
            lines.append(
                f"image    {ref} now comes from {new[ref].source} (locked {old[ref].source})"
            )
        elif old[ref].digest != new[ref].digest:
            lines.append(
                f"image    {ref} now resolves to {new[ref].digest} (locked {old[ref].digest})"
            )
    return lines


def check_lock(old: Lock, inputs: LockInputs, resolve: Resolver | None) -> tuple[str, ...]:
    """Differences between the lock and the inputs now; `resolve=None` skips the registry and
    only checks that every image is locked with the same source."""
    if resolve is None:
        images = {}
        for ref in inputs.images:
            source = inputs.vendor_map.get(ref, ref)
            locked = old.images.get(ref)
            same = locked is not None and locked.source == source
            images[ref] = locked if same else LockedImage(source=source, digest="unresolved")
        now = Lock(
            manifest=inputs.manifest,
            files=digest_files(inputs.files),
            images=images,
            tools=dict(inputs.tools),
        )
        return diff_locks(old, now)
    return diff_locks(old, build_lock(inputs, resolve))


# --- reading and writing -----------------------------------------------------------------------


def dump_lock(lock: Lock) -> str:
    return _HEADER + yaml.safe_dump(
        lock.to_dict(), sort_keys=False, default_flow_style=False, width=200
    )


def write_lock(path: Path, lock: Lock) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dump_lock(lock), encoding="utf-8")
    os.replace(tmp, path)


def write_vendor_map(path: Path, lock: Lock) -> None:
    text = yaml.safe_dump(lock.vendor_map(), sort_keys=True, default_flow_style=False, width=300)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# Vendor images pinned to the digests in {LOCK_FILE}\n{text}", encoding="utf-8"
    )


def load_lock(path: Path) -> Lock:
    """The lock at `path`, checked against schema/lock.schema.json (a ManifestError says where not)."""
    if "does not exist" in file_problem(path):
        raise LockError(f"{path}: no lock file; run `tf2aif lock` and commit {path.name}")
    data = load_checked(path, "lock.schema.json", what="lock file").data
    if data.get("format", LOCK_FORMAT) > LOCK_FORMAT:
        raise LockError(f"{path}: lock format {data['format']} is newer than this tf2aif reads")
    return Lock.from_dict(data)

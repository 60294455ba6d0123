"""Every `docker buildx imagetools` command tf2aif runs, named for what it does.

`inspect` reads what a registry holds (a manifest's digest and platforms, a raw manifest, an
image's config and labels); `create` points tags at a manifest or merges manifests into one index.
The argv builders are pure; `raw_digest` is the one shared edge (most callers pass their own
`run` so they can be tested without a registry).
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Sequence

__all__ = [
    "create_argv",
    "inspect_config_argv",
    "inspect_manifest_argv",
    "inspect_raw_argv",
    "raw_digest",
]

_IMAGETOOLS = ("docker", "buildx", "imagetools")
Runner = Callable[..., subprocess.CompletedProcess]


def inspect_manifest_argv(reference: str) -> list[str]:
    """Prints the manifest (or index) descriptor as JSON: its digest and, for an index, the
    platforms of its manifests."""
    return [*_IMAGETOOLS, "inspect", "--format", "{{json .Manifest}}", reference]


def inspect_raw_argv(reference: str) -> list[str]:
    """Prints the manifest bytes as the registry stores them: their sha256 is the digest."""
    return [*_IMAGETOOLS, "inspect", "--raw", reference]


def inspect_config_argv(reference: str) -> list[str]:
    """Prints the image config (one per platform for an index): labels, env, entrypoint."""
    return [*_IMAGETOOLS, "inspect", reference, "--format", "{{json .Image}}"]


def create_argv(
    *, sources: Sequence[str], tags: Sequence[str], annotations: Sequence[str] = ()
) -> list[str]:
    """Points every tag at `sources`: one source tags that very manifest (no copy, no rebuild),
    several are merged into one index (with `index:key=value` annotations)."""
    if not sources or not tags:
        raise ValueError("imagetools create needs at least one source and one tag")
    argv = [*_IMAGETOOLS, "create"]
    for tag in tags:
        argv += ["-t", tag]
    for annotation in annotations:
        argv += ["--annotation", annotation]
    return [*argv, *sources]


def raw_digest(reference: str, *, run: Runner = subprocess.run) -> str | None:
    """The digest of a remote reference (sha256 of its raw manifest), or None when the registry
    does not have it or cannot be asked."""
    try:
        proc = run(inspect_raw_argv(reference), capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()

"""SOURCE_DATE_EPOCH: one timestamp for every image of a build.

BuildKit stamps image configs and layer files with build times unless it is given
SOURCE_DATE_EPOCH (and `rewrite-timestamp=true` on the exporter); with it, rebuilding the same
commit on another machine gives the same image bytes wherever the build steps themselves are
deterministic. The value comes from, in order: `--source-date-epoch`, the environment, the
time of the last commit of the git repository holding the manifest.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tf2aif.errors import PlanError

__all__ = ["SourceDate", "resolve_source_date"]

OFF = "off"


@dataclass(frozen=True, kw_only=True)
class SourceDate:
    epoch: str | None  # seconds since 1970 as BuildKit wants it, or None: build times
    origin: str  # "--source-date-epoch", "environment", "git <commit>", or why there is none


def resolve_source_date(
    root: Path, flag: str | None = None, environ: Mapping[str, str] = os.environ
) -> SourceDate:
    if flag is not None:
        if flag == OFF:
            return SourceDate(epoch=None, origin="turned off with --source-date-epoch off")
        return SourceDate(epoch=_seconds(flag, "--source-date-epoch"), origin="--source-date-epoch")
    if environ.get("SOURCE_DATE_EPOCH"):
        return SourceDate(
            epoch=_seconds(environ["SOURCE_DATE_EPOCH"], "SOURCE_DATE_EPOCH"), origin="environment"
        )
    commit = _last_commit(root)
    if commit is None:
        return SourceDate(epoch=None, origin="no git commit holds the manifest")
    sha, seconds = commit
    return SourceDate(epoch=seconds, origin=f"git {sha[:12]}")


def _seconds(text: str, where: str) -> str:
    if not text.strip().isdigit():
        raise PlanError(f"{where}: expected whole seconds since 1970 or 'off', got {text!r}")
    return str(int(text))


def _last_commit(root: Path) -> tuple[str, str] | None:
    if not any((d / ".git").exists() for d in (root.resolve(), *root.resolve().parents)):
        return None  # not in a work tree: no need to run git
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%H %ct"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = proc.stdout.split()
    return (parts[0], parts[1]) if proc.returncode == 0 and len(parts) == 2 else None

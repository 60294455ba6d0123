"""Write manifest documents as YAML files: the only part of deploy that touches the disk."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["dump_documents", "write_files"]

log = logging.getLogger(__name__)


class _Dumper(yaml.SafeDumper):
    """Block style, insertion order kept (Kubernetes' conventional key order), no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_documents(documents: Sequence[Mapping[str, Any]]) -> str:
    return yaml.dump_all(
        [dict(doc) for doc in documents],
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        explicit_start=len(documents) > 1,
        width=100,
    )


def write_files(out_dir: Path, files: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Path]:
    """Write each file (in name order); return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(files):
        path = out_dir / name
        path.write_text(dump_documents(files[name]), encoding="utf-8")
        log.debug("wrote %s", path)
        written.append(path)
    return written

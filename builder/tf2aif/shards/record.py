"""Shard records: what one runner built for one shard, handed to `tf2aif release`.

A record names the plan it was made from (the shards' fingerprint), the shard, its runner and
platform, and per target what was pushed: per-platform digests of server images (pushed by digest
or under a staging tag, never a final tag) or the artifact digest of each conversion, with
status, reason, fidelity and durations, plus tool versions. Loading goes through the shared
bounded loader and schema/shard-record.schema.json: every wrong field is reported together,
located (file:line:column and field path).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tf2aif.pipeline.yamlfile import load_checked

__all__ = [
    "KIND",
    "ShardConversion",
    "ShardImage",
    "ShardRecord",
    "load_shard_record",
    "now_utc",
    "save_shard_record",
]

KIND = "tf2aif-shard"
FORMAT_VERSION = 1  # the schema's `version` const
SCHEMA = "shard-record.schema.json"


@dataclass(frozen=True, kw_only=True)
class ShardImage:
    """One server target built for one platform."""

    target: str
    platform: str
    content_digest: str  # the plan's content address of the image
    status: str
    reason: str = ""
    digest: str | None = None  # what was pushed (an index holding the image and its provenance)
    manifest: str | None = None  # the platform's image manifest inside it
    repository: str = ""
    artifact: str = ""  # the conversion artifact it was built from, repo@sha256:…
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ShardConversion:
    target: str
    address: str  # content address of the conversion
    status: str
    reason: str = ""
    reference: str = ""  # repo:tag (the tag is the content address)
    digest: str | None = None  # the artifact image (an index over the platforms it serves)
    reused: bool = False  # already in the registry: not run again
    fidelity: Mapping[str, Any] = field(default_factory=dict)
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ShardRecord:
    name: str  # the manifest's name
    plan: str  # Shards.fingerprint
    shard: str
    stage: str  # convert | build
    runner: str
    platform: str  # build shards: the OCI platform; convert shards: ""
    status: str
    created: str
    tools: Mapping[str, str] = field(default_factory=dict)
    source_date_epoch: str | None = None
    images: tuple[ShardImage, ...] = ()
    conversions: tuple[ShardConversion, ...] = ()
    kind: str = KIND
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def save_shard_record(record: ShardRecord, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_shard_record(path: str | Path) -> ShardRecord:
    """A shard record, checked against schema/shard-record.schema.json; a ManifestError names
    every wrong field (file:line: field: problem)."""
    data = load_checked(path, SCHEMA, what="shard record").data
    images = tuple(
        ShardImage(**{**item, "duration": float(item.get("duration", 0.0))})
        for item in data.get("images", ())
    )
    conversions = tuple(
        ShardConversion(**{**item, "duration": float(item.get("duration", 0.0))})
        for item in data.get("conversions", ())
    )
    return ShardRecord(**{**data, "images": images, "conversions": conversions})

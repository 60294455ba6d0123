"""Shard records: what one runner built for one shard, handed to `tf2aif release`.

A record names the plan it was made from (the shards' fingerprint), the shard, its runner and
platform, and per target what was pushed: per-platform digests of server images (pushed by digest
or under a staging tag, never a final tag) or the artifact digest of each conversion, with
status, reason, fidelity and durations, plus tool versions. Loading checks every field and says
which file and field is wrong.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tf2aif.errors import PlanError

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
FORMAT_VERSION = 1
_MAX_BYTES = 4 << 20  # a record lists targets, not layers: megabytes mean a wrong file
STATUSES = ("success", "failed", "aborted")


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


class _Reader:
    """Typed field access that reports `file: field.path: problem`."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, message: str) -> PlanError:
        return PlanError(f"{self.file}: {where}: {message}")

    def get(self, data: Mapping[str, Any], key: str, kind: type | tuple, where: str, **default):
        if key not in data:
            if "default" in default:
                return default["default"]
            raise self.fail(f"{where}{key}", "missing")
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            expected = getattr(kind, "__name__", None) or " or ".join(k.__name__ for k in kind)
            raise self.fail(f"{where}{key}", f"expected {expected}, got {type(value).__name__}")
        return value

    def status(self, data: Mapping[str, Any], where: str) -> str:
        value = self.get(data, "status", str, where)
        if value not in STATUSES:
            raise self.fail(f"{where}status", f"{value!r} is not one of {', '.join(STATUSES)}")
        return value


def load_shard_record(path: str | Path) -> ShardRecord:
    file = Path(path)
    read = _Reader(str(file))
    try:
        if file.stat().st_size > _MAX_BYTES:
            raise read.fail("(file)", f"larger than {_MAX_BYTES >> 20} MiB: not a shard record")
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PlanError(f"{file}: shard record not found") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise read.fail("(file)", f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise read.fail("(file)", "nested too deeply: not a shard record") from exc
    if not isinstance(data, dict):
        raise read.fail("(top level)", "expected an object")
    if data.get("kind") != KIND:
        raise read.fail("kind", f"expected {KIND!r}: not a shard record")
    version = read.get(data, "version", int, "")
    if version != FORMAT_VERSION:
        raise read.fail(
            "version", f"{version} is not supported (this tf2aif reads {FORMAT_VERSION})"
        )
    images = []
    for i, item in enumerate(read.get(data, "images", list, "", default=[])):
        where = f"images[{i}]."
        if not isinstance(item, dict):
            raise read.fail(f"images[{i}]", "expected an object")
        images.append(
            ShardImage(
                target=read.get(item, "target", str, where),
                platform=read.get(item, "platform", str, where),
                content_digest=read.get(item, "content_digest", str, where),
                status=read.status(item, where),
                reason=read.get(item, "reason", str, where, default=""),
                digest=read.get(item, "digest", (str, type(None)), where, default=None),
                manifest=read.get(item, "manifest", (str, type(None)), where, default=None),
                repository=read.get(item, "repository", str, where, default=""),
                artifact=read.get(item, "artifact", str, where, default=""),
                duration=read.get(item, "duration", float, where, default=0.0),
            )
        )
    conversions = []
    for i, item in enumerate(read.get(data, "conversions", list, "", default=[])):
        where = f"conversions[{i}]."
        if not isinstance(item, dict):
            raise read.fail(f"conversions[{i}]", "expected an object")
        conversions.append(
            ShardConversion(
                target=read.get(item, "target", str, where),
                address=read.get(item, "address", str, where),
                status=read.status(item, where),
                reason=read.get(item, "reason", str, where, default=""),
                reference=read.get(item, "reference", str, where, default=""),
                digest=read.get(item, "digest", (str, type(None)), where, default=None),
                reused=read.get(item, "reused", bool, where, default=False),
                fidelity=read.get(item, "fidelity", dict, where, default={}),
                duration=read.get(item, "duration", float, where, default=0.0),
            )
        )
    stage = read.get(data, "stage", str, "")
    if stage not in ("convert", "build"):
        raise read.fail("stage", f"{stage!r} is not one of convert, build")
    tools = read.get(data, "tools", dict, "", default={})
    return ShardRecord(
        name=read.get(data, "name", str, ""),
        plan=read.get(data, "plan", str, ""),
        shard=read.get(data, "shard", str, ""),
        stage=stage,
        runner=read.get(data, "runner", str, ""),
        platform=read.get(data, "platform", str, "", default=""),
        status=read.status(data, ""),
        created=read.get(data, "created", str, "", default=""),
        tools={str(k): str(v) for k, v in tools.items()},
        source_date_epoch=read.get(data, "source_date_epoch", (str, type(None)), "", default=None),
        images=tuple(images),
        conversions=tuple(conversions),
    )

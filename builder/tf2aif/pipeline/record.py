"""Stage 6, record: what was built, as JSON meant to be committed next to the manifest.

One entry per server image: its variants, platforms, tags, digest, status, the fidelity its
artifact measured, and the base images it was built from. Stable order, sorted keys, so a
rebuild that changed nothing gives an identical file except `created`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tf2aif import __version__
from tf2aif.errors import ManifestError, ManifestIssue, SourceLocation
from tf2aif.pipeline.build import Result
from tf2aif.pipeline.plan import Plan
from tf2aif.pipeline.yamlfile import file_problem, load_checked

__all__ = [
    "RECORD_FILE",
    "BuildRecord",
    "ImageRecord",
    "image_reference",
    "load_record",
    "make_record",
    "read_record",
    "save_record",
]

RECORD_FILE = "tf2aif-record.json"
FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class ImageRecord:
    target: str
    variants: tuple[str, ...]
    runtime: str
    precision: str
    platforms: tuple[str, ...]
    image: str
    tags: tuple[str, ...]
    digest: str | None
    status: str
    reason: str = ""
    convert_target: str = ""
    fidelity: Mapping[str, Any] = field(default_factory=dict)
    durations: Mapping[str, float] = field(default_factory=dict)
    base_images: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BuildRecord:
    name: str
    manifest: str
    model_digest: str
    registry: str
    created: str
    tools: Mapping[str, str]
    images: tuple[ImageRecord, ...]
    source_date_epoch: str | None = None  # the timestamp the images carry; None: build times
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["images"] = [asdict(i) for i in self.images]
        return data


def make_record(
    plan: Plan,
    results: Sequence[Result],
    *,
    fidelity: Mapping[str, Mapping[str, Any]],
    tools: Mapping[str, str],
    now: dt.datetime | None = None,
    source_date_epoch: str | None = None,
) -> BuildRecord:
    """`fidelity` maps conversion target -> its fidelity.json content."""
    by_target = {r.target: r for r in results}
    bases = {b.name: b for b in plan.bases}
    images = []
    for serve in plan.serves:
        result = by_target.get(serve.name)
        if result is None:
            continue
        convert = by_target.get(serve.convert)
        images.append(
            ImageRecord(
                target=serve.name,
                variants=serve.variants,
                runtime=serve.runtime,
                precision=serve.precision,
                platforms=serve.platforms,
                image=serve.image,
                tags=serve.tags,
                digest=result.digest,
                status=result.status.value,
                reason=result.reason,
                convert_target=serve.convert,
                fidelity=dict(fidelity.get(serve.convert, {})),
                durations={
                    "convert": round(convert.duration, 3) if convert else 0.0,
                    "serve": round(result.duration, 3),
                },
                base_images={serve.base: bases[serve.base].vendor},
                labels=dict(serve.labels),
            )
        )
    created = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return BuildRecord(
        name=plan.name,
        manifest=plan.manifest_file,
        model_digest=plan.model_digest,
        registry=plan.registry,
        created=created,
        tools={"tf2aif": __version__, **tools},
        images=tuple(images),
        source_date_epoch=source_date_epoch,
    )


def save_record(record: BuildRecord, path: Path) -> Path:
    """Write atomically: a reader never sees half a record."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_record(path: str | Path) -> BuildRecord:
    """A build record, checked against schema/record.schema.json; ManifestError when it is not one."""
    data = load_checked(path, "record.schema.json", what="build record").data
    images = tuple(
        ImageRecord(
            **{
                **i,
                "variants": tuple(i["variants"]),
                "platforms": tuple(i["platforms"]),
                "tags": tuple(i["tags"]),
            }
        )
        for i in data["images"]
    )
    return BuildRecord(**{**data, "images": images})


def read_record(path: str | Path) -> BuildRecord:
    """`load_record` for readers (deploy, bench, place): a missing record says how to make one."""
    if "does not exist" in file_problem(path):
        message = (
            "build record not found; run `tf2aif bake` first (it writes the record "
            "next to the manifest) or pass --record"
        )
        issue = ManifestIssue(location=SourceLocation(file=str(path)), message=message)
        raise ManifestError([issue], file=str(path), what="build record")
    return load_record(path)


def image_reference(image: ImageRecord) -> str:
    """How to pull or run the image: image@digest when known (exact), else its first tag, else ''.

    A digest names the very bytes that were built; a tag can be moved, so it comes second.
    """
    if image.digest:
        return f"{image.image}@{image.digest}"
    return image.tags[0] if image.tags else ""

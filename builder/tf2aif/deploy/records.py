"""Read what deployment needs from a build record (`tf2aif-record.json`).

Tolerant on purpose: unknown keys are ignored and optional ones default, so a record written by a
newer tf2aif still deploys. Only the fields a Deployment needs are kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf2aif.errors import Tf2aifError

__all__ = ["DeployableImage", "RecordSummary", "read_record"]


@dataclass(frozen=True, kw_only=True)
class DeployableImage:
    """One image of the record: the variants it serves and how to reference it."""

    target: str
    variants: tuple[str, ...]  # "<platform>/<runtime>/<precision>"
    runtime: str
    precision: str
    platforms: tuple[str, ...]  # OCI platforms, e.g. ("linux/amd64", "linux/arm64")
    image: str  # repository, e.g. "127.0.0.1:5000/tf2aif/digits"
    tags: tuple[str, ...]
    digest: str | None
    status: str

    @property
    def reference(self) -> str:
        """By digest when the image was pushed or loaded, else by its content tag (listed last)."""
        if self.digest:
            return f"{self.image}@{self.digest}"
        if self.tags:
            return self.tags[-1]
        raise Tf2aifError(f"record image {self.target!r} has neither a digest nor a tag")


@dataclass(frozen=True, kw_only=True)
class RecordSummary:
    name: str  # the model name, served at /v2/models/{name}
    images: tuple[DeployableImage, ...]


def read_record(path: Path) -> RecordSummary:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Tf2aifError(
            f"{path}: build record not found; run `tf2aif bake` first (it writes the record "
            "next to the manifest) or pass --record"
        ) from None
    except json.JSONDecodeError as exc:
        raise Tf2aifError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("images"), list):
        raise Tf2aifError(f"{path}: not a tf2aif build record (no 'images' list)")
    name = str(data.get("name") or "model")
    return RecordSummary(
        name=name,
        images=tuple(_image(path, index, entry) for index, entry in enumerate(data["images"])),
    )


def _image(path: Path, index: int, entry: Any) -> DeployableImage:
    where = f"{path}: images[{index}]"
    if not isinstance(entry, Mapping):
        raise Tf2aifError(f"{where}: expected an object")
    missing = [key for key in ("target", "variants", "image") if not entry.get(key)]
    if missing:
        raise Tf2aifError(f"{where}: missing {', '.join(missing)}")
    return DeployableImage(
        target=str(entry["target"]),
        variants=tuple(str(v) for v in entry["variants"]),
        runtime=str(entry.get("runtime", "")),
        precision=str(entry.get("precision", "")),
        platforms=tuple(str(p) for p in entry.get("platforms") or ()),
        image=str(entry["image"]),
        tags=tuple(str(t) for t in entry.get("tags") or ()),
        digest=entry.get("digest") or None,
        status=str(entry.get("status") or "success"),
    )

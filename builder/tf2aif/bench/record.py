"""A tolerant reader of the build record (`tf2aif-record.json`): only what bench and report need."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tf2aif.errors import Tf2aifError

__all__ = ["RecordImage", "load_record_images", "pick_variant"]

_ARCH = {"cpu": "amd64", "gpu": "amd64", "alveo": "amd64", "arm": "arm64", "agx": "arm64"}


@dataclass(frozen=True, kw_only=True)
class RecordImage:
    target: str
    variants: tuple[str, ...]
    reference: str  # what `docker run` takes: first tag, else image@digest
    status: str
    durations: Mapping[str, float] = field(default_factory=dict)  # stage -> seconds


def load_record_images(path: str | Path) -> tuple[str, tuple[RecordImage, ...]]:
    """(model name, images) of a build record; unknown keys are ignored."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise Tf2aifError(f"{path}: cannot read build record: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise Tf2aifError(f"{path}: not a tf2aif build record (no 'images' list)")
    return str(data.get("name", "")), tuple(_image(entry) for entry in data["images"])


def _image(entry: Mapping[str, Any]) -> RecordImage:
    tags = entry.get("tags") or []
    digest = entry.get("digest")
    reference = tags[0] if tags else (f"{entry.get('image')}@{digest}" if digest else "")
    return RecordImage(
        target=str(entry.get("target", "")),
        variants=tuple(entry.get("variants") or ()),
        reference=reference,
        status=str(entry.get("status", "")),
        durations={k: float(v) for k, v in (entry.get("durations") or {}).items() if v is not None},
    )


def pick_variant(variants: tuple[str, ...], platform: str) -> str | None:
    """The variant an image serves on this host: same platform first, else same CPU arch."""
    for variant in variants:
        if variant.split("/")[0] == platform:
            return variant
    arch = _ARCH.get(platform)
    for variant in variants:
        if _ARCH.get(variant.split("/")[0]) == arch:
            return variant
    return None

"""What bench and report take from a build record (`tf2aif-record.json`, see tf2aif.record)."""

from __future__ import annotations

from pathlib import Path

from tf2aif.record import BuildRecord, ImageRecord, load_record

__all__ = ["image_reference", "pick_variant", "read_record"]

_ARCH = {"cpu": "amd64", "gpu": "amd64", "alveo": "amd64", "arm": "arm64", "agx": "arm64"}


def read_record(path: str | Path) -> BuildRecord:
    """The build record; a file that is not one raises a ManifestError saying where and why."""
    return load_record(path)


def image_reference(image: ImageRecord) -> str:
    """What `docker run` takes: the first tag, else image@digest, else ''."""
    if image.tags:
        return image.tags[0]
    return f"{image.image}@{image.digest}" if image.digest else ""


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

"""Read the build record (`tf2aif-record.json`) for deployment, with errors a user can act on."""

from __future__ import annotations

from pathlib import Path

from tf2aif.errors import Tf2aifError
from tf2aif.record import BuildRecord, ImageRecord, load_record
from tf2aif.yamlfile import file_problem

__all__ = ["image_reference", "read_record"]


def read_record(path: Path) -> BuildRecord:
    """The build record at `path`; a missing one says how to make it, a broken one where it is broken."""
    if "does not exist" in file_problem(path):
        raise Tf2aifError(
            f"{path}: build record not found; run `tf2aif bake` first (it writes the record "
            "next to the manifest) or pass --record"
        )
    return load_record(path)


def image_reference(image: ImageRecord) -> str:
    """By digest when the image was pushed or loaded, else by its content tag (listed first)."""
    if image.digest:
        return f"{image.image}@{image.digest}"
    if image.tags:
        return image.tags[0]
    raise Tf2aifError(f"record image {image.target!r} has neither a digest nor a tag")

"""Read the build record (`tf2aif-record.json`) for deployment, with errors a user can act on."""

from __future__ import annotations

import json
from pathlib import Path

from tf2aif.errors import Tf2aifError
from tf2aif.record import BuildRecord, ImageRecord, load_record

__all__ = ["image_reference", "read_record"]


def read_record(path: Path) -> BuildRecord:
    try:
        return load_record(path)
    except FileNotFoundError:
        raise Tf2aifError(
            f"{path}: build record not found; run `tf2aif bake` first (it writes the record "
            "next to the manifest) or pass --record"
        ) from None
    except json.JSONDecodeError as exc:
        raise Tf2aifError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except KeyError as exc:
        raise Tf2aifError(f"{path}: not a tf2aif build record (no {exc.args[0]!r} field)") from None
    except (TypeError, AttributeError) as exc:
        raise Tf2aifError(f"{path}: not a tf2aif build record ({exc})") from None


def image_reference(image: ImageRecord) -> str:
    """By digest when the image was pushed or loaded, else by its content tag (listed first)."""
    if image.digest:
        return f"{image.image}@{image.digest}"
    if image.tags:
        return image.tags[0]
    raise Tf2aifError(f"record image {image.target!r} has neither a digest nor a tag")

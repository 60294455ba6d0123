"""The build record as deployment reads it; the reader lives with the record (tf2aif.pipeline.record)."""

from __future__ import annotations

from tf2aif.pipeline.record import image_reference, read_record

__all__ = ["image_reference", "read_record"]

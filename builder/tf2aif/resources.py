"""Where the shipped data (recipes, schema, base_images) lives: inside a wheel or in a checkout."""

from __future__ import annotations

from pathlib import Path

__all__ = ["data_dir"]

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """`recipes`, `schema` or `base_images`: the wheel copy, else the source checkout's."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tf2aif data folder {name!r} not found next to {_PACKAGE}")
